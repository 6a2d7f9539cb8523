"""Whisper's encoder on fewer frames than a 30 s window (ONNX Runtime engines, `trim_margin_s`): the sliced
positional table changes nothing on a whole window, shorter inputs run, and engines that cannot trim say so."""

from __future__ import annotations

import json

import numpy as np
import pytest

from asr_engines.features import WhisperFrontEnd
from asr_engines.variants import Precision


def _session(path):
    import onnxruntime

    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_sliced_positions_change_nothing_on_a_whole_window_and_take_shorter_inputs(tiny_whisper_onnx, speech, tmp_path):
    from asr_engines.engines.passes.encoder_positions import slice_positions

    slice_positions(tiny_whisper_onnx / "encoder_model.onnx", tmp_path / "sliced.onnx")
    features = WhisperFrontEnd()(speech)["input_features"]
    (exported,) = _session(tiny_whisper_onnx / "encoder_model.onnx").run(None, {"input_features": features})
    sliced = _session(tmp_path / "sliced.onnx")
    (whole,) = sliced.run(None, {"input_features": features})
    np.testing.assert_array_equal(whole, exported)
    (short,) = sliced.run(None, {"input_features": np.ascontiguousarray(features[..., :800])})
    assert short.shape == (1, 400, exported.shape[-1]) and np.isfinite(short).all()


def test_quantization_prepares_the_sliced_encoder_without_litter(tiny_whisper_onnx, tmp_path, monkeypatch):
    """ONNX Runtime's symbolic shape inference fails on the sliced table unless told to merge, and a failed
    attempt leaves files in the working directory."""
    import onnx

    from asr_engines.engines.int8.quantize import prepare
    from asr_engines.engines.passes.encoder_positions import slice_positions

    slice_positions(tiny_whisper_onnx / "encoder_model.onnx", tmp_path / "sliced.onnx")
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    prepare(tmp_path / "sliced.onnx", tmp_path / "prepared.onnx")
    assert list(work.iterdir()) == []
    assert any(node.name == "positions/Slice" for node in onnx.load(str(tmp_path / "prepared.onnx")).graph.node)


def test_a_graph_without_one_positional_add_is_refused(tmp_path):
    from onnx import TensorProto, helper, save

    from asr_engines.engines.passes.encoder_positions import EncoderLayoutError, slice_positions

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 80, 3000])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 80, 3000])])
    save(helper.make_model(graph), str(tmp_path / "plain.onnx"))
    with pytest.raises(EncoderLayoutError, match="one Add"):
        slice_positions(tmp_path / "plain.onnx", tmp_path / "out.onnx")


class FrameCount:
    """Wraps the encoder engine; records how many log-mel frames each run was fed."""

    def __init__(self, engine):
        self.engine, self.frames = engine, []

    def run_device(self, feeds, to_host=()):
        self.frames.append(feeds["input_features"].shape[-1])
        return self.engine.run_device(feeds, to_host)


@pytest.mark.parametrize("variant", ["fp32", "int8", "int8-qdq"])
def test_a_trim_margin_feeds_the_audio_plus_the_margin(tiny_whisper_engines, utterances, variant):
    from asr_engines import load_recognizer

    manifest = json.loads((tiny_whisper_engines / f"tiny-whisper-{variant}.json").read_text())
    assert manifest["build"]["encoder"]["sliced_positions"] is True
    audio = [utterance.load() for utterance in utterances[:2]]
    whole = load_recognizer(tiny_whisper_engines / f"tiny-whisper-{variant}.json", threads=1, trim_margin_s=None)
    trimmed = load_recognizer(tiny_whisper_engines / f"tiny-whisper-{variant}.json", threads=1, trim_margin_s=2.0)
    trimmed.encoder = counter = FrameCount(trimmed.encoder)
    tokens = trimmed.generate_batch(audio)
    expected = int(np.ceil(max(map(len, audio)) / 160 + 200))
    # random weights loop at times: such windows run once more, whole (see the loop test below)
    retried = [3000] if trimmed.whole_window_retries else []
    assert counter.frames == [expected + expected % 2, *retried] and expected < 3000
    assert all(0 < len(sequence) for sequence in tokens)
    # a margin past the window is the whole window: the same tokens as no trimming
    wide = load_recognizer(tiny_whisper_engines / f"tiny-whisper-{variant}.json", threads=1, trim_margin_s=30.0)
    assert wide.generate_batch(audio) == whole.generate_batch(audio)


def test_engines_that_cannot_trim_say_so(tiny_whisper_engines, tiny_engines, tmp_path):
    import shutil

    from asr_engines import load_recognizer

    for path in tiny_whisper_engines.glob("tiny-whisper-fp32*"):
        shutil.copy(path, tmp_path / path.name)
    sidecar_path = tmp_path / "tiny-whisper-fp32.json"
    manifest = json.loads(sidecar_path.read_text())
    del manifest["build"]["encoder"]["sliced_positions"]  # as a TensorRT plan's manifest reads
    sidecar_path.write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="whole 30 s windows"):
        load_recognizer(sidecar_path, trim_margin_s=8.0)
    with pytest.raises(ValueError, match="at least 0 s"):
        load_recognizer(tiny_whisper_engines / "tiny-whisper-fp32.json", trim_margin_s=-1.0)
    ctc = next(tiny_engines.glob("*-fp32.json"))
    with pytest.raises(ValueError, match="CTC models read the audio as it is"):
        load_recognizer(ctc, trim_margin_s=8.0)


def test_each_encoder_precision_trims_by_its_measured_default(tiny_whisper_engines, tiny_engines, tmp_path):
    """fp32 encoders stayed within 0.5 WER points with 8 s (the CPU int8 engine's too), int8 encoders did not;
    an engine that cannot trim is not asked to, and None always means the whole window."""
    import shutil

    from asr_engines import load_recognizer
    from asr_engines.runtime.whisper import DEFAULT_TRIM_MARGIN_S

    assert DEFAULT_TRIM_MARGIN_S[Precision.FP32] == 8.0 and DEFAULT_TRIM_MARGIN_S[Precision.INT8] is None
    for variant, encoder in (("fp32", Precision.FP32), ("int8", Precision.FP32), ("int8-qdq", Precision.INT8)):
        recognizer = load_recognizer(tiny_whisper_engines / f"tiny-whisper-{variant}.json", threads=1)
        assert recognizer.trim_margin_s == DEFAULT_TRIM_MARGIN_S[encoder]
        assert recognizer.decoding() == {"trim_margin_s": recognizer.trim_margin_s, "trim_decided": None,  # built unmeasured
                                         "whole_window_retries": 0, "windows_without_speech": 0,
                                         "token_head": variant == "fp32"}  # fp32's screened head (test_screened_head.py)
        assert load_recognizer(tiny_whisper_engines / f"tiny-whisper-{variant}.json", trim_margin_s=None).trim_margin_s is None
    for path in tiny_whisper_engines.glob("tiny-whisper-fp32*"):
        shutil.copy(path, tmp_path / path.name)
    manifest = json.loads((tmp_path / "tiny-whisper-fp32.json").read_text())
    del manifest["build"]["encoder"]["sliced_positions"]  # as a TensorRT plan's manifest reads
    (tmp_path / "tiny-whisper-fp32.json").write_text(json.dumps(manifest))
    assert load_recognizer(tmp_path / "tiny-whisper-fp32.json").trim_margin_s is None
    assert load_recognizer(next(tiny_engines.glob("*-fp32.json"))).decoding()["chunk_s"] == 20.0


def test_trim_margin_on_the_command_line():
    from asr_engines.runtime.whisper import PRECISION_DEFAULT, parse_trim_margin

    assert parse_trim_margin("8") == 8.0 and parse_trim_margin("off") is None
    assert parse_trim_margin("default") == PRECISION_DEFAULT
    with pytest.raises(ValueError, match="SECONDS, off or default, not 'abc'"):
        parse_trim_margin("abc")


def test_transcribe_takes_a_trim_margin(tiny_whisper_engines, utterances):
    from click.testing import CliRunner

    from asr_engines.commands.transcribe import command

    engine = str(tiny_whisper_engines / "tiny-whisper-fp32.json")
    for margin in ("8", "off"):
        result = CliRunner().invoke(command, [engine, str(utterances[0].audio_path), "--trim-margin", margin])
        assert result.exit_code == 0 and result.output.strip()
    result = CliRunner().invoke(command, [engine, str(utterances[0].audio_path), "--trim-margin", "abc"])
    assert result.exit_code == 1 and "SECONDS, off or default, not 'abc'" in result.output


def test_loop_test_tells_a_repeated_sentence_from_speech(utterances):
    from asr_engines.runtime.whisper import LOOP_COMPRESSION_RATIO, compression_ratio

    assert all(compression_ratio(utterance.text) < LOOP_COMPRESSION_RATIO for utterance in utterances)
    assert compression_ratio("I had the pleasure of meeting him in society. " * 8) > LOOP_COMPRESSION_RATIO


def test_a_trimmed_window_that_loops_is_decoded_again_on_the_whole_window(tiny_whisper_engines, utterances):
    """Seen on noisy speech with tiny.en: a trimmed window repeats one sentence to max_length where the whole
    window reads it right. Here the trimmed decode of the second recording loops, so it alone is decoded again."""
    from asr_engines import load_recognizer
    from asr_engines.runtime.whisper import Decoded

    recognizer = load_recognizer(tiny_whisper_engines / "tiny-whisper-fp32.json", threads=1, trim_margin_s=8.0)
    sentence = recognizer._tokenizer.encode(" I had the pleasure of meeting him in society.").ids
    fed = []

    def decode(features, timestamps=None, language=None):
        fed.append(features.shape)
        trimmed = features.shape[-1] < 3000
        return [Decoded(sentence * (20 if trimmed and index == 1 else 1), -0.2, 0.01) for index in range(len(features))]

    recognizer._decode = decode
    texts = recognizer.transcribe_batch([utterance.load() for utterance in utterances[:3]])
    assert texts == ["I had the pleasure of meeting him in society."] * 3
    assert [shape[0] for shape in fed] == [3, 1] and fed[0][-1] < 3000 and fed[1][-1] == 3000
    assert recognizer.whole_window_retries == 1
