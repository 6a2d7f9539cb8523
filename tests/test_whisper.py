"""Whisper: the numpy front end against transformers, greedy KV-cache decoding against `generate` on a tiny
random Whisper, windows over 30 s, and real WER on whisper tiny.en from ../shared (skipped without it)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import SHARED_WHISPER

from asr_engines.families import LOGITS_WANTED
from asr_engines.features import SparseFilterbank, WhisperFrontEnd, mel_filters

needs_shared = pytest.mark.skipif(not SHARED_WHISPER.is_dir(), reason=f"no real Whisper weights at {SHARED_WHISPER}")


@pytest.fixture(scope="module")
def feature_extractor():
    from transformers import WhisperFeatureExtractor

    return WhisperFeatureExtractor(feature_size=80)


def test_mel_filters_are_transformers(feature_extractor):
    assert np.max(np.abs(mel_filters(80) - feature_extractor.mel_filters)) < 1e-9


@pytest.mark.parametrize("num_mel_bins", [80, 128])
def test_sparse_filterbank_is_the_dense_product(num_mel_bins):
    """The front end applies the mel filters as their nonzero weights (no BLAS threads): the same product."""
    filters = mel_filters(num_mel_bins)
    sparse = SparseFilterbank.of(filters)
    assert len(sparse.weights) == np.count_nonzero(filters) < filters.size / 20
    power = np.random.default_rng(0).random((37, filters.shape[0])) * 1e3
    np.testing.assert_allclose(sparse.apply(power), power @ filters, rtol=1e-12, atol=0)
    lone = np.zeros((filters.shape[0], 3))
    lone[5, 1], lone[7, 2] = 0.5, 2.0  # mel bins covering no FFT bin read 0
    np.testing.assert_array_equal(SparseFilterbank.of(lone).apply(power), power @ lone)


def test_log_mel_matches_transformers(feature_extractor, utterances):
    differences = []
    for utterance in utterances[:4] + utterances[-1:]:
        audio = utterance.load()
        expected = feature_extractor(audio, sampling_rate=16_000, return_tensors="np").input_features
        actual = WhisperFrontEnd()(audio)["input_features"]
        assert actual.shape == expected.shape == (1, 80, 3000)
        differences.append(float(np.max(np.abs(actual - expected))))
    print(f"log-mel max abs difference vs WhisperFeatureExtractor: {max(differences):.2e}")
    assert max(differences) < 1e-4  # float32 rounding of a [-1.5, 1.5] range: measured 1.6e-5


def test_a_whole_recordings_log_mel_is_transformed_once(utterances, monkeypatch):
    """Asked for every frame, the front end takes the floor's top from the frames it computed, not from a second
    transform of the recording: the same values as with the top read separately."""
    front_end = WhisperFrontEnd()
    audio = utterances[0].load().astype(np.float64)
    expected = front_end.log_mel(audio, 0, None, front_end.log10_top(audio))
    calls = []
    transform = WhisperFrontEnd._log10_mel
    monkeypatch.setattr(WhisperFrontEnd, "_log10_mel", lambda self, *args: calls.append(args[1:]) or transform(self, *args))
    assert np.array_equal(front_end.log_mel(audio), expected)
    assert calls == [(0, front_end.frames_in(len(audio)))]
    assert front_end.log_mel(np.zeros(100)).shape == (80, 0)  # no frame at all


def test_the_first_frames_alone_are_the_whole_windows_first_frames(utterances):
    """A trimmed encoder's input is computed over the audio and the frames it needs, not the whole window:
    the same values, the floor included (its maximum is the audio's), silence and a cut recording too."""
    front_end = WhisperFrontEnd()
    rng = np.random.default_rng(0)
    cases = [(utterances[0].load(), 400), (utterances[1].load(), 10), (np.zeros(16_000, np.float32), 200),
             (rng.uniform(-0.1, 0.1, 40 * 16_000).astype(np.float32), 2998), (utterances[2].load(), 3000)]
    for audio, frames in cases:
        whole = front_end(audio)["input_features"]
        first = front_end(audio, frames)["input_features"]
        assert first.shape == (1, 80, frames)
        np.testing.assert_allclose(first, whole[..., :frames], rtol=0, atol=1e-6)


def test_only_the_frames_that_read_audio_are_transformed(monkeypatch):
    """Past the audio the window is zeros: those frames are filled with the floor, not transformed, and every value
    is the one the whole zero-padded window's log-mel has (recordings of a few samples, and up to and over 30 s)."""
    front_end = WhisperFrontEnd()
    window = int(front_end.chunk_s * 16_000)
    transformed = []
    transform = WhisperFrontEnd._log10_mel
    monkeypatch.setattr(WhisperFrontEnd, "_log10_mel", lambda self, *args: transformed.append(args[2]) or transform(self, *args))
    rng = np.random.default_rng(3)
    for samples in (0, 1, 199, 200, 201, 360, 80_000, window - 199, window, window + 5_000):
        audio = rng.uniform(-0.2, 0.2, samples).astype(np.float32)
        padded = np.zeros(window)
        padded[: min(samples, window)] = audio[:window]
        whole = front_end.log_mel(padded)
        for frames in (None, 2, 3000, 4000):
            transformed.clear()
            features = front_end(audio, frames)["input_features"]
            assert features.shape == (1, 80, min(frames or 3000, 3000))
            assert np.array_equal(features[0], whole[:, : features.shape[2]]), (samples, frames)
            assert transformed == [min(3000, (min(samples, window) + 199) // 160 + 1)]


def test_greedy_tokens_match_transformers_generate(tiny_whisper, tiny_whisper_engines, utterances):
    import torch
    from transformers import WhisperForConditionalGeneration

    from asr_engines import load_recognizer

    model = WhisperForConditionalGeneration.from_pretrained(tiny_whisper).eval()
    recognizer = load_recognizer(tiny_whisper_engines / "tiny-whisper-fp32.json", threads=1, trim_margin_s=None)
    for utterance in utterances[:3]:
        audio = utterance.load()
        features = torch.from_numpy(WhisperFrontEnd()(audio)["input_features"])
        with torch.inference_mode():
            sequence = model.generate(features, num_beams=1, do_sample=False)[0].tolist()
        # transformers returns the new tokens alone here (the prompt only with return_dict_in_generate)
        expected = sequence[2:] if sequence[0] == model.generation_config.decoder_start_token_id else sequence
        if expected and expected[-1] == model.generation_config.eos_token_id:
            expected = expected[:-1]
        assert recognizer.generate(audio) == expected and len(expected) == 22


def test_int8_whisper_on_a_cpu_keeps_the_encoder_fp32_and_quantizes_decoders_per_channel(tiny_whisper_engines):
    """The CPU int8 engine: the fp32 engine's encoder, decoders with int8 weights (one scale per output
    channel) and activations quantized per call, no calibration; the Q/DQ file for TensorRT calibrates the encoder."""
    import onnx

    manifest = json.loads((tiny_whisper_engines / "tiny-whisper-int8.json").read_text())
    fp32 = json.loads((tiny_whisper_engines / "tiny-whisper-fp32.json").read_text())
    assert {part: build["variant"] for part, build in manifest["build"].items()} == {
        "encoder": "fp32", "decoder": "int8-dynamic", "decoder_with_past": "int8-dynamic"}
    assert (manifest["files_sha256"][manifest["files"]["encoder"]] == fp32["files_sha256"][fp32["files"]["encoder"]])
    assert manifest["calibration"] is None and manifest["int8_budget"] is None
    decoder = onnx.load(str(tiny_whisper_engines / manifest["files"]["decoder_with_past"]))
    initializers = {initializer.name: initializer for initializer in decoder.graph.initializer}
    matmuls = [node for node in decoder.graph.node if node.op_type == "MatMulInteger"]
    weights = [initializers[node.input[1]] for node in matmuls]
    scales = [initializers[node.input[1].removesuffix("_quantized") + "_scale"] for node in matmuls]
    assert manifest["build"]["decoder_with_past"]["per_channel"] is True and matmuls
    assert all(list(scale.dims) == [weight.dims[1]] and weight.dims[1] > 1 for weight, scale in zip(weights, scales))
    qdq = json.loads((tiny_whisper_engines / "tiny-whisper-int8-qdq.json").read_text())
    assert qdq["build"]["encoder"]["variant"] == "int8-qdq" and qdq["calibration"]["utterances"] == 4
    assert qdq["build"]["encoder"]["quantized_op_types"] == ["MatMul", "Gemm", "Conv"]
    assert manifest["decoder"]["prompt"] == [50257, 50362] and manifest["front_end"]["kind"] == "whisper"
    assert (tiny_whisper_engines / manifest["decoder"]["tokenizer"]).is_file()


def test_a_glob_of_json_files_reaches_each_whisper_engine_once(tiny_whisper_engines):
    """`engines/NAME-*.json` (the Makefile's bench) also matches each engine's tokenizer JSON."""
    from asr_engines.manifest import manifest_path_for

    matched = sorted(tiny_whisper_engines.glob("tiny-whisper-*.json"))
    assert any(path.name.endswith(".tokenizer.json") for path in matched)
    manifests = list(dict.fromkeys(manifest_path_for(path) for path in matched))
    assert [path.name for path in manifests] == ["tiny-whisper-fp32.json", "tiny-whisper-int8-qdq.json", "tiny-whisper-int8.json"]
    assert manifest_path_for(tiny_whisper_engines / "tiny-whisper-int8.decoder.onnx").name == "tiny-whisper-int8.json"


def test_audio_over_30_s_is_read_long_form_seeking_to_the_last_complete_segment(tiny_whisper_engines, monkeypatch):
    """75 s, scripted windows: the next window starts where the last complete segment ended (10.00 s), a window
    whose speech ends inside it moves on a whole window, the last one is zero-padded, and an unfinished segment's
    words are left to the next window; a window judged no speech gives no words and moves on a whole window."""
    from asr_engines import load_recognizer
    from asr_engines.runtime.whisper import Decoded

    recognizer = load_recognizer(tiny_whisper_engines / "tiny-whisper-fp32.json", threads=1)
    t, w = 50363, 1770  # <|0.00|> of tiny.en, and a word
    front_end = type(recognizer._front_end)
    monkeypatch.setattr(front_end, "log10_top", lambda self, audio: 0.0)
    monkeypatch.setattr(front_end, "frames_in", lambda self, samples: 7500)
    monkeypatch.setattr(front_end, "log_mel", lambda self, audio, first, frames, top: np.tile(
        np.arange(first, first + frames, dtype=np.float32), (80, 1)))  # each frame holds its own index
    script = {0: [t, w, t + 500, t + 500, 2221], 1000: [t, w, t + 750], 4000: [w], 7000: [w, t + 100]}
    seen = []

    def decode(features, timestamps=None, language=None):
        seek = int(features[0, 0, 0])
        seen.append((seek, int((features[0, 0] != 0).sum()), timestamps is not None))
        silent = seek == 4000  # the third window: no speech (openai-whisper's rule: p > 0.6 and avg log-prob < -1)
        return [Decoded(script[seek], -1.5 if silent else -0.3, 0.9 if silent else 0.1)]

    monkeypatch.setattr(recognizer, "_decode", decode)
    assert recognizer.transcribe(np.zeros(75 * 16_000, np.float32)) == recognizer.decode_tokens([w] * 3)
    assert recognizer.windows_without_speech == 1
    assert [(seek, frames) for seek, frames, _ in seen] == [(0, 2999), (1000, 3000), (4000, 3000), (7000, 500)]
    assert all(timestamped for _, _, timestamped in seen)
    assert recognizer._prompts.prompt(None, None, None, timestamps=True) == [50257]  # no <|notimestamps|>


@pytest.mark.slow
@needs_shared
def test_tiny_en_fp32_engines_match_transformers_text(utterances, real_whisper_fp32):
    """Real weights, every tenth clean utterance (7; all 70 give the same tokens too: python -m benchmarks.whisper_cpu):
    our fp32 engine writes transformers' greedy generate's text, both fed the same audio, whole windows."""
    import torch
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    from asr_engines import load_recognizer
    from asr_engines.measure.wer import corpus_wer

    recognizer = load_recognizer(real_whisper_fp32, threads=2, trim_margin_s=None)
    processor = WhisperProcessor.from_pretrained(SHARED_WHISPER)
    model = WhisperForConditionalGeneration.from_pretrained(SHARED_WHISPER, dtype=torch.float32).eval()
    torch.set_num_threads(2)
    references, ours, theirs = [], [], []
    for utterance in utterances[::10]:
        audio = utterance.load()
        references.append(utterance.text)
        ours.append(recognizer.transcribe(audio))
        with torch.inference_mode():
            ids = model.generate(processor(audio, sampling_rate=16_000, return_tensors="pt").input_features, num_beams=1)
        theirs.append(processor.batch_decode(ids, skip_special_tokens=True)[0].strip())
    ours_wer, theirs_wer = corpus_wer(references, ours).wer, corpus_wer(references, theirs).wer
    print(f"whisper tiny.en, {len(ours)} clean utterances: ours fp32 {ours_wer:.2f} % WER, transformers {theirs_wer:.2f} %")
    assert ours == theirs


def test_a_batch_decodes_as_each_utterance_alone(tiny_whisper_engines, utterances):
    from asr_engines import load_recognizer

    recognizer = load_recognizer(tiny_whisper_engines / "tiny-whisper-fp32.json", threads=1, trim_margin_s=None)
    audio = [utterance.load() for utterance in utterances[3:6]]
    alone = [recognizer.generate(samples) for samples in audio]
    assert recognizer.generate_batch(audio) == alone
    assert recognizer.transcribe_batch(audio, batch_size=2) == [recognizer.decode_tokens(tokens) for tokens in alone]


class ProfileCheck:
    """Wraps an engine; records every fed shape that falls outside a TensorRT shape profile, and the largest seen."""

    def __init__(self, engine, profile):
        self.engine, self.profile, self.outside, self.largest = engine, profile, [], {}

    def run_device(self, feeds, to_host=()):
        for name, array in feeds.items():
            if name == LOGITS_WANTED:  # ONNX Runtime's screened head only: TensorRT's plans take the argmax head
                continue
            low, _, high = self.profile.shapes[name]
            if not all(lo <= n <= hi for n, lo, hi in zip(array.shape, low, high, strict=True)):
                self.outside.append((name, array.shape, low, high))
            self.largest[name] = tuple(max(pair) for pair in zip(self.largest.get(name, array.shape), array.shape))
        return self.engine.run_device(feeds, to_host)


def test_tensorrt_profiles_hold_every_shape_whisper_feeds(tiny_whisper_onnx, tiny_whisper_engines, utterances):
    """A TensorRT plan refuses shapes outside its profile: the profiles made for Whisper's three graphs must
    hold every shape the recognizer feeds them, from the prompt to max_length, at the largest batch."""
    from dataclasses import replace

    from asr_engines import load_manifest, load_recognizer
    from asr_engines.engines.profiles import dimension_ranges, graph_profile
    from asr_engines.runtime.whisper import profile_batch_limit

    recognizer = load_recognizer(tiny_whisper_engines / "tiny-whisper-fp32.json", threads=1, trim_margin_s=None)
    checks = {}
    for part in ("encoder", "decoder", "decoder_with_past"):
        ranges = dimension_ranges("whisper", part, tiny_whisper_onnx, (2.0, 6.0, 14.0), max_batch=2)
        profile = graph_profile(tiny_whisper_onnx / f"{part}_model.onnx", ranges)
        checks[part] = ProfileCheck(getattr(recognizer, part), profile)
        setattr(recognizer, part, checks[part])
    assert checks["encoder"].profile.shapes["input_features"] == ((1, 80, 3000), (1, 80, 3000), (2, 80, 3000))
    assert checks["decoder_with_past"].profile.shapes["past_key_values.0.decoder.key"] == (
        (1, 2, 1, 32), (1, 2, 23, 32), (2, 2, 23, 32))  # opt: prompt + 4 tokens/s x 6 s, capped at max_length - 1
    recognizer.transcribe_batch([utterance.load() for utterance in utterances[:3]], batch_size=2)
    assert all(not check.outside for check in checks.values()), {part: check.outside for part, check in checks.items()}
    assert checks["decoder_with_past"].largest["past_key_values.0.decoder.key"] == (2, 2, 23, 32)  # max_length reached

    manifest = load_manifest(tiny_whisper_engines / "tiny-whisper-fp32.json")
    assert profile_batch_limit(manifest) is None
    plan = replace(manifest, build={part: {"profile": check.profile.as_dict()} for part, check in checks.items()})
    assert profile_batch_limit(plan) == 2


def test_whisper_decodes_through_the_tensorrt_engine_on_stand_ins(tiny_whisper_onnx, tiny_whisper_engines, utterances):
    """Whisper's three graphs through our TensorRTEngine (buffers sized for the profiles, int64 token ids cast
    to the int32 TensorRT 8.x declares) over stand-in plans that run the graphs with ONNX Runtime on one stand-in
    GPU: the same tokens as the ONNX Runtime engines, batch of two; the encoder's output, the cross-attention
    K/V and the growing self-attention K/V never leave the device; no allocation after the first window."""
    from asr_engines import load_recognizer
    from asr_engines.manifest import load_manifest
    from stand_ins.tensorrt import bytes_per_token, stand_in_whisper

    manifest = load_manifest(tiny_whisper_engines / "tiny-whisper-fp32.json")
    stand_in, memory, log = stand_in_whisper(tiny_whisper_onnx, manifest, max_batch=2)
    assert dict((i.name, i.dtype) for i in stand_in.decoder.inputs)["input_ids"] == "int32"
    reference = load_recognizer(tiny_whisper_engines / "tiny-whisper-fp32.json", threads=1, trim_margin_s=None)
    audio = [utterance.load() for utterance in utterances[:2]]
    tokens = stand_in.generate_batch(audio)
    assert tokens == reference.generate_batch(audio) and len(tokens[0]) == 22  # up to max_length: the cache's largest shape
    allocations = memory.allocations
    assert stand_in.generate_batch(audio[::-1]) == tokens[::-1] and memory.allocations == allocations

    features = 2 * 80 * 3000 * 4
    assert log["encoder"]["h2d"] == 2 * features and log["encoder"]["d2h"] == 0  # its output stayed on the device
    h2d, d2h = bytes_per_token(log)
    vocabulary = 51864
    print(f"tiny random Whisper, batch 2, stand-ins: {h2d:.0f} B host->device and {d2h:.0f} B device->host per step")
    assert h2d <= 2 * 4 * 4  # the two windows' token ids (the prompt's, int32, at the first step)
    assert stand_in.token_head and d2h <= 2 * 64  # each window's token id and log-probability, not its logits
    assert d2h < vocabulary * 4 / 1000


def test_device_transfers_per_token_stay_within_budget(tiny_whisper_onnx, tiny_whisper_engines, utterances):
    """Batch 1: at most 64 B each way per token. The greedy head chooses the token on the device, so neither the
    logits (203 KiB in fp32) nor the KV cache, whatever the model size, crosses; long-form windows still read the
    logits (their timestamp rules run here)."""
    from asr_engines.manifest import load_manifest
    from stand_ins.tensorrt import bytes_per_token, stand_in_whisper

    stand_in, _, log = stand_in_whisper(tiny_whisper_onnx, load_manifest(tiny_whisper_engines / "tiny-whisper-fp32.json"))
    for utterance in utterances[:3]:
        stand_in.generate(utterance.load())
    h2d, d2h = bytes_per_token(log)
    assert h2d <= 64 and d2h <= 64
