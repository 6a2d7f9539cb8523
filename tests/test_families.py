"""One place per model family: every per-stage table keyed by family covers every family in FAMILIES, so a new
family cannot be half added."""

from __future__ import annotations

from asr_engines.engines.assets import DECODER_SETTINGS
from asr_engines.engines.profiles import FAMILY_RANGES
from asr_engines.export.onnx_export import CHECKS
from asr_engines.families import FAMILIES, family_of
from asr_engines.runtime.recognizer import RECOGNIZERS


def test_every_stage_table_covers_every_family():
    for table in (CHECKS, DECODER_SETTINGS, FAMILY_RANGES, RECOGNIZERS):
        assert set(table) == set(FAMILIES)


def test_a_config_finds_its_family():
    assert family_of("whisper", ["WhisperForConditionalGeneration"]).name == "whisper"
    assert family_of("hubert", ["HubertForCTC"]).name == "ctc"
    assert family_of("moonshine", ["MoonshineForConditionalGeneration"]).name == "moonshine"
    assert family_of("bert", ["BertForMaskedLM"]) is None


def test_each_family_builds_its_front_end_from_a_processor_config():
    assert FAMILIES["whisper"].front_end({"feature_size": 128}).num_mel_bins == 128
    assert FAMILIES["ctc"].front_end({"do_normalize": False}).do_normalize is False
    assert [graph.name for graph in FAMILIES["whisper"].graphs] == ["encoder", "decoder", "decoder_with_past"]
