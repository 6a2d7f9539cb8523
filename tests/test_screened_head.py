"""The screened greedy head (engines/passes/screened_head.py): fp32's tokens from an int8 screen of the vocabulary."""

from __future__ import annotations

import json

import numpy as np
import pytest

from asr_engines.families import LOGITS_WANTED, NEXT_TOKEN, NEXT_TOKEN_LOGPROB


def _session(path):
    import onnxruntime

    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_the_head_chooses_fp32s_token_and_gives_logits_only_when_asked(tiny_whisper_onnx, tmp_path):
    from asr_engines.engines.assets import read_exported_model
    from asr_engines.engines.passes.screened_head import add_screened_head

    decoder = read_exported_model(tiny_whisper_onnx).decoder
    source = tiny_whisper_onnx / "decoder_with_past_model.onnx"
    add_screened_head(source, tmp_path / "screened.onnx", decoder)
    plain, screened = _session(source), _session(tmp_path / "screened.onnx")
    rng = np.random.default_rng(0)
    feeds = {}
    for arg in plain.get_inputs():  # a batch of 3 at step 5 of its KV cache, encoder 40 frames long
        if arg.name == "input_ids":
            feeds[arg.name] = rng.integers(0, 50000, (3, 1), dtype=np.int64)
        else:
            feeds[arg.name] = rng.standard_normal((3, 2, 40 if "encoder" in arg.name else 5, 32)).astype(np.float32)
    logits = plain.run(["logits"], feeds)[0][:, -1]
    masked = logits.copy()
    masked[:, decoder["suppress_tokens"]] = -np.inf
    best = masked.max(axis=-1)
    exact_logprob = best - (best + np.log(np.exp(masked - best[:, None]).sum(axis=-1)))

    names = [output.name for output in screened.get_outputs()]
    chosen = dict(zip(names, screened.run(None, {**feeds, LOGITS_WANTED: np.array(False)})))
    assert chosen[NEXT_TOKEN].shape == (3, 1) and chosen[NEXT_TOKEN][:, 0].tolist() == masked.argmax(axis=-1).tolist()
    # candidates exact, the other tokens by their 4-bit estimates (2e-4 off here)
    assert np.abs(chosen[NEXT_TOKEN_LOGPROB][:, 0] - exact_logprob).max() < 0.01
    assert chosen["logits"].size == 0
    asked = dict(zip(names, screened.run(None, {**feeds, LOGITS_WANTED: np.array(True)})))
    np.testing.assert_array_equal(asked["logits"][:, -1], logits)
    assert asked[NEXT_TOKEN].tolist() == chosen[NEXT_TOKEN].tolist()


def test_the_fp32_engine_decodes_as_its_exported_graphs_short_and_long(tiny_whisper_onnx, tiny_whisper_engines, utterances):
    """ONNX Runtime's fp32 engine carries the screened head; its tokens are those of the exported graphs without
    it, one window at a time, in a batch, and long-form (where it reads the logits)."""
    from asr_engines import load_recognizer
    from asr_engines.engines.assets import read_exported_model
    from asr_engines.measure.int8_probe import graph_recognizer
    from asr_engines.variants import Variant

    manifest = json.loads((tiny_whisper_engines / "tiny-whisper-fp32.json").read_text())
    assert manifest["build"]["decoder_with_past"]["greedy_head"] == "screened"
    assert manifest["build"]["decoder"]["greedy_head"] == "argmax"
    qdq = json.loads((tiny_whisper_engines / "tiny-whisper-int8-qdq.json").read_text())
    assert "greedy_head" not in qdq["build"]["decoder_with_past"]  # TensorRT's input keeps plain ONNX ops

    model = read_exported_model(tiny_whisper_onnx)
    graphs = {part.name: (model.dir / part.file, Variant.FP32) for part in model.parts}
    audio = [utterance.load() for utterance in utterances[:4]]
    long = np.concatenate([utterance.load() for utterance in utterances[4:20]])
    assert len(long) > 35 * 16_000
    with graph_recognizer(model, graphs, threads=1) as plain, \
            load_recognizer(tiny_whisper_engines / "tiny-whisper-fp32.json", threads=1, trim_margin_s=None) as screened:
        assert screened.token_head and not plain.token_head
        assert [screened.generate(samples) for samples in audio] == [plain.generate(samples) for samples in audio]
        assert screened.generate_batch(audio) == plain.generate_batch(audio)
        assert screened.generate_long(long) == plain.generate_long(long)


@pytest.mark.parametrize("kind", ["no projection", "untied"])
def test_a_graph_without_a_tied_projection(tiny_whisper_onnx, tmp_path, kind):
    """No MatMul writing `logits`: refused in one line; an untied projection: its rows are copied, same tokens."""
    import onnx
    from onnx import numpy_helper

    from asr_engines.engines.assets import read_exported_model
    from asr_engines.engines.passes.screened_head import add_screened_head
    from asr_engines.engines.passes.token_head import TokenHeadError

    decoder = read_exported_model(tiny_whisper_onnx).decoder
    model = onnx.load(str(tiny_whisper_onnx / "decoder_with_past_model.onnx"))
    projection = next(node for node in model.graph.node if list(node.output) == ["logits"])
    if kind == "no projection":
        projection.op_type = "Add"
        onnx.save(model, str(tmp_path / "odd.onnx"))
        with pytest.raises(TokenHeadError, match="no vocabulary projection"):
            add_screened_head(tmp_path / "odd.onnx", tmp_path / "screened.onnx", decoder)
        return
    weights = next(init for init in model.graph.initializer if init.name == projection.input[1])
    weights.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weights) * 1.5, weights.name))  # no longer the embedding
    onnx.save(model, str(tmp_path / "untied.onnx"))
    add_screened_head(tmp_path / "untied.onnx", tmp_path / "screened.onnx", decoder)
    assert "screen/rows" in {init.name for init in onnx.load(str(tmp_path / "screened.onnx")).graph.initializer}


def test_the_estimate_weights_are_four_bit_blocks_within_half_a_step():
    from asr_engines.engines.passes.screened_head import ESTIMATE_BLOCK, _four_bit_blocks

    weight = np.random.default_rng(1).standard_normal((64, 10)).astype(np.float32)
    weight[:ESTIMATE_BLOCK, 3] = 0  # an all-zero block
    packed, scales = _four_bit_blocks(weight)
    assert packed.shape == (10, 64 // ESTIMATE_BLOCK, ESTIMATE_BLOCK // 2) and packed.dtype == np.uint8
    codes = np.stack([packed & 0x0F, packed >> 4], axis=-1).reshape(10, -1, ESTIMATE_BLOCK).astype(np.float32) - 8
    restored = (codes * scales[..., np.newaxis]).reshape(10, 64).T
    assert np.all(np.abs(restored - weight) <= np.repeat(scales.T, ESTIMATE_BLOCK, axis=0) / 2 + 1e-7)
    assert np.abs(restored).max(axis=0).tolist() == pytest.approx(np.abs(weight).max(axis=0).tolist(), rel=1e-6)


def _log_softmax(scores: np.ndarray) -> np.ndarray:
    top = scores.max(axis=-1, keepdims=True)
    return scores - top - np.log(np.exp(scores - top).sum(axis=-1, keepdims=True))


def test_the_argmax_head_gives_the_tokens_and_no_speech_log_probabilities(tiny_whisper_onnx, tmp_path):
    """The greedy head of the first decoder: the best unsuppressed token after the prompt, its log-probability over
    the masked logits and the no-speech token's at the start of the transcript, as numpy computes them."""
    from asr_engines.engines.assets import read_exported_model
    from asr_engines.engines.passes.token_head import add_token_head
    from asr_engines.families import NO_SPEECH_LOGPROB

    decoder = read_exported_model(tiny_whisper_onnx).decoder
    source = tiny_whisper_onnx / "decoder_model.onnx"
    add_token_head(source, tmp_path / "head.onnx", decoder, first=True)
    plain, head = _session(source), _session(tmp_path / "head.onnx")
    rng = np.random.default_rng(2)
    feeds = {"input_ids": rng.integers(0, 50000, (3, 4), dtype=np.int64),
             "encoder_hidden_states": rng.standard_normal((3, 40, 64)).astype(np.float32)}
    feeds = {arg.name: feeds[arg.name] for arg in plain.get_inputs()}
    logits = plain.run(["logits"], feeds)[0]
    masked = logits[:, -1].copy()
    masked[:, decoder["suppress_tokens"] + decoder["begin_suppress_tokens"]] = -np.inf
    outputs = dict(zip([output.name for output in head.get_outputs()], head.run(None, feeds)))
    assert outputs[NEXT_TOKEN][:, 0].tolist() == masked.argmax(axis=-1).tolist()
    np.testing.assert_allclose(outputs[NEXT_TOKEN_LOGPROB][:, 0], _log_softmax(masked).max(axis=-1), rtol=0, atol=1e-5)
    no_speech = decoder["no_timestamps_id"] - 1
    np.testing.assert_allclose(outputs[NO_SPEECH_LOGPROB][:, 0], _log_softmax(logits[:, 0])[:, no_speech], rtol=0, atol=1e-5)
