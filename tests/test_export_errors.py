"""One-line errors for models the pipeline cannot take."""

import json

import pytest

from asr_engines.export import ModelError, resolve_model


def test_a_non_speech_model_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertForMaskedLM"]}))
    with pytest.raises(ModelError, match="takes CTC .*, Whisper and Moonshine"):
        resolve_model(str(tmp_path))


def test_an_unreachable_model_is_refused_at_once_saying_what_works_offline(monkeypatch):
    import time

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.monotonic()
    with pytest.raises(ModelError, match="cannot fetch 'nobody/no-such-model': the Hugging Face Hub is not reachable .*"
                                         "random:wav2vec2-base and local checkpoint folders work offline"):
        resolve_model("nobody/no-such-model")
    assert time.monotonic() - started < 5  # no retries (25 s before)


def test_without_the_env_flag_one_probe_decides(monkeypatch):
    import asr_engines.export.models

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "https://127.0.0.1:9")  # nothing listens there: the probe fails at once
    assert not asr_engines.export.models.hub_reachable()
    with pytest.raises(ModelError, match="not reachable from here"):
        resolve_model("nobody/no-such-model")


def test_a_misspelt_alias_lists_the_aliases():
    with pytest.raises(ModelError, match=r"'wav2vec' is no alias, folder or Hub id \(org/name\); did you mean wav2vec2.*"
                                         r" Aliases: wav2vec2, wav2vec2-large"):
        resolve_model("wav2vec")


def test_unknown_random_architecture_and_empty_folders_are_one_line(tmp_path):
    with pytest.raises(ModelError, match="no random architecture 'whisper-tiny'; choose from random:wav2vec2-base, random:wav2vec2-large"):
        resolve_model("random:whisper-tiny")
    for name in ("plain", "empty"):  # "empty" contains "mpt", a model type transformers would guess from the name
        (tmp_path / name).mkdir()
        with pytest.raises(ModelError, match=f"{name}: no config.json; a local model is a Hugging Face checkpoint folder"):
            resolve_model(str(tmp_path / name))


def test_aliases_and_local_folders_resolve(tiny_checkpoint, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="cannot fetch 'openai/whisper-tiny.en'"):  # the alias, looked up as its Hub id
        resolve_model("whisper-tiny.en")
    source = resolve_model(str(tiny_checkpoint))
    assert (source.name, source.location, source.family) == ("tiny", str(tiny_checkpoint), "ctc")


@pytest.mark.parametrize(("config", "message"), [('{"model_type": "wav2vec2", "hidden_si', "cannot read it"),
                                                 ('{"model_type": "no-such-model"}', "cannot read it")])
def test_a_broken_or_unknown_config_is_one_line(tmp_path, config, message):
    (tmp_path / "config.json").write_text(config)
    with pytest.raises(ModelError, match=f"config.json: transformers {message} \\(") as raised:
        resolve_model(str(tmp_path))
    assert "\n" not in str(raised.value)
