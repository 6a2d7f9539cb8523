"""One-line errors for models the pipeline cannot take."""

import json

import pytest

from export import ModelError, resolve_model


def test_a_non_speech_model_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertForMaskedLM"]}))
    with pytest.raises(ModelError, match="takes CTC .* and Whisper"):
        resolve_model(str(tmp_path))


def test_an_unreachable_model_is_refused(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="cannot fetch 'nobody/no-such-model'"):
        resolve_model("nobody/no-such-model")


def test_aliases_and_local_folders_resolve(tiny_checkpoint, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="cannot fetch 'openai/whisper-tiny.en'"):  # the alias, looked up as its Hub id
        resolve_model("whisper-tiny.en")
    source = resolve_model(str(tiny_checkpoint))
    assert (source.name, source.location, source.family) == ("tiny", str(tiny_checkpoint), "ctc")
