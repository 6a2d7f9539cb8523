"""Moonshine as a model family, on a two-layer random Moonshine with a small rebuilt tokenizer: export, engines, the
recognizer against transformers' greedy `generate`; and the converter's pieces (tests/test_moonshine_real.py runs
it on the real wheel)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from asr_engines.export.moonshine_cpp import (
    BOS,
    EOS,
    ConversionError,
    OrtGraph,
    pieces,
    read_wheel,
    state_dict,
    tokenizer_for,
    write_checkpoint,
)
from asr_engines.families import MOONSHINE_MIN_SAMPLES, moonshine_frames

WORDS = [*"▁thesandoy", "▁the", "▁t", "he", "▁a", "nd", "▁and", "▁of", "▁s", "ay", "▁say", "▁says"]
PIECES = [b"<unk>", b"<s>", b"</s>", *(bytes([value]) for value in range(256)), *(word.encode() for word in WORDS)]


def test_the_rebuilt_tokenizer_decodes_pieces_bytes_and_spaces_as_sentencepiece_does():
    tokenizer = tokenizer_for(PIECES, 300)
    ids = {name: index for index, name in enumerate(["<unk>", "<s>", "</s>", *(f"<0x{v:02X}>" for v in range(256)), *WORDS])}
    assert tokenizer.decode([ids["▁the"], ids["▁says"], ids["▁a"], ids["nd"]]) == "the says and"
    assert tokenizer.decode([ids["▁a"], ids["<0xC3>"], ids["<0xA9>"]]) == "aé"  # byte fallback, fused into UTF-8
    assert tokenizer.decode([BOS, ids["▁of"], EOS, 299], skip_special_tokens=True) == "of"  # 299: a reserved id
    assert tokenizer.encode("the says").tokens == ["▁the", "▁says"]  # merges rebuilt in id order
    assert tokenizer.get_vocab_size() == 300


def test_tokenizer_bin_is_read_piece_by_piece_and_a_cut_one_refused():
    data = b"".join(bytes([len(piece)]) + piece for piece in PIECES)
    assert pieces(data) == PIECES
    with pytest.raises(ConversionError, match="truncated"):
        pieces(data[:-1])


def test_weights_are_dequantized_and_named_after_the_nodes_that_read_them():
    rng = np.random.default_rng(0)
    quantized = rng.integers(-128, 127, (4, 6), dtype=np.int8)
    tensors = {"w_quantized": quantized, "w_scale": np.float32([0.5]), "w_zero_point": np.float32([0.25]),
               "layers.0.mlp.fc1.bias": np.arange(6, dtype=np.float32), "norm_w": np.ones((4, 1), np.float32) * 2,
               "conv1.weight": np.ones((4, 1, 3), np.float32), "embed_quantized": np.ones((10, 4), np.int8),
               "embed_scale": np.float32([2.0]), "embed_zero_point": np.float32([0.0]), "inv": np.ones((1, 2, 1), np.float32)}
    nodes = [("MatMul", "/layers.0/self_attn/dense/MatMul", ["x", "w_add_tensor"]),
             ("Add", "/layers.0/mlp/fc1/Add", ["layers.0.mlp.fc1.bias", "y"]),  # the bias on either side
             ("Mul", "/groupnorm/Mul", ["z", "norm_w"]),
             ("Conv", "/conv1/Conv", ["a", "conv1.weight"]),
             ("Gather", "/model/decoder/embed_tokens/Gather", ["embed_add_tensor", "ids"]),
             ("MatMul", "/rotary_emb/MatMul", ["inv", "p"])]
    found = state_dict(OrtGraph(tensors, nodes), "model.encoder.")
    assert sorted(found) == ["model.decoder.embed_tokens.weight", "model.encoder.conv1.weight", "model.encoder.groupnorm.weight",
                             "model.encoder.layers.0.mlp.fc1.bias", "model.encoder.layers.0.self_attn.o_proj.weight"]
    np.testing.assert_array_equal(found["model.encoder.layers.0.self_attn.o_proj.weight"], (quantized * 0.5 + 0.25).T)
    np.testing.assert_array_equal(found["model.encoder.groupnorm.weight"], [2, 2, 2, 2])
    np.testing.assert_array_equal(found["model.decoder.embed_tokens.weight"], np.full((10, 4), 2.0))
    clash = OrtGraph({**tensors, "other": np.zeros(6, np.float32)}, [*nodes, ("Add", "/layers.0/mlp/fc1/Add", ["y", "other"])])
    with pytest.raises(ConversionError, match="two different values"):
        state_dict(clash, "model.encoder.")


def test_a_wheel_that_is_not_the_pinned_one_is_refused(tmp_path):
    fake = tmp_path / "moonshine_cpp-0.1.4-py3-none-manylinux2014_x86_64.whl"
    fake.write_bytes(b"not the wheel")
    with pytest.raises(ConversionError, match=hashlib.sha256(b"not the wheel").hexdigest()):
        read_wheel(fake)
    with pytest.raises(ConversionError, match="no such file"):
        read_wheel(tmp_path / "absent.whl")


@pytest.fixture(scope="module")
def tiny_moonshine(tmp_path_factory):
    """A two-layer random Moonshine (64 wide) saved with its processor, as `asr-engines convert` writes one."""
    import torch
    from transformers import MoonshineConfig, MoonshineForConditionalGeneration

    torch.manual_seed(0)
    config = MoonshineConfig(vocab_size=300, hidden_size=64, intermediate_size=128, encoder_num_hidden_layers=2,
                             decoder_num_hidden_layers=2, encoder_num_attention_heads=2, decoder_num_attention_heads=2,
                             encoder_num_key_value_heads=2, decoder_num_key_value_heads=2, partial_rotary_factor=0.5,
                             bos_token_id=BOS, eos_token_id=EOS, decoder_start_token_id=BOS)
    model = MoonshineForConditionalGeneration(config).eval()
    return write_checkpoint(model, PIECES, tmp_path_factory.mktemp("moonshine") / "tiny-moonshine", {"random": True})


@pytest.fixture(scope="module")
def tiny_moonshine_engines(tiny_moonshine, tmp_path_factory):
    from asr_engines.engines.backends import make_builder
    from asr_engines.engines.build import CalibrationSettings, build_engines
    from asr_engines.export import export_onnx, resolve_model

    onnx_dir = tmp_path_factory.mktemp("moonshine-onnx") / "tiny-moonshine"
    report = export_onnx(resolve_model(str(tiny_moonshine)), onnx_dir)
    assert report.family == "moonshine" and report.max_abs_diff < 1e-3
    assert report.files == ["decoder_model.onnx", "decoder_with_past_model.onnx", "encoder_model.onnx"]
    out = tmp_path_factory.mktemp("moonshine-engines")
    build_engines(onnx_dir, out, make_builder("onnxruntime", qdq=True), ["fp32", "int8"], CalibrationSettings(count=4),
                  progress=False)
    return onnx_dir, out


def test_moonshine_fp32_engines_write_transformers_greedy_tokens(tiny_moonshine, tiny_moonshine_engines, utterances):
    import torch
    from transformers import MoonshineForConditionalGeneration

    from asr_engines import load_recognizer

    model = MoonshineForConditionalGeneration.from_pretrained(tiny_moonshine).eval()
    _, engines = tiny_moonshine_engines
    with load_recognizer(engines / "tiny-moonshine-fp32.json", threads=1) as recognizer:
        for utterance in utterances[:3]:
            audio = utterance.load()[: 3 * 16_000]
            limit = recognizer.max_new_tokens(len(audio))
            with torch.inference_mode():
                expected = model.generate(torch.from_numpy(audio[np.newaxis]), attention_mask=torch.ones(1, len(audio), dtype=torch.long),
                                          max_new_tokens=limit, do_sample=False, num_beams=1)[0].tolist()
            assert [BOS, *recognizer.generate(audio)] == [token for token in expected if token != EOS]
        assert recognizer.transcribe(np.zeros(MOONSHINE_MIN_SAMPLES - 1, np.float32)) == ""  # no encoder frame, no text


def test_moonshine_cpu_int8_engine_quantizes_the_decoders_and_unmeasured_keeps_the_encoder_float(tiny_moonshine_engines, utterances):
    from asr_engines import load_recognizer
    from asr_engines.variants import Variant

    _, engines = tiny_moonshine_engines
    with load_recognizer(engines / "tiny-moonshine-int8.json", threads=1) as recognizer:
        variants = {graph: recognizer.manifest.graph_variant(graph) for graph in recognizer.manifest.files}
        assert variants == {"encoder": Variant.FP32, "decoder": Variant.INT8_DYNAMIC, "decoder_with_past": Variant.INT8_DYNAMIC}
        assert recognizer.manifest.int8_forms["note"].startswith("not measured")  # built without a judge: the safest
        assert isinstance(recognizer.transcribe(utterances[0].load()[: 2 * 16_000]), str)


def test_a_recording_past_one_input_is_read_a_speech_segment_at_a_time(tiny_moonshine_engines, utterances, monkeypatch):
    from asr_engines import load_recognizer

    _, engines = tiny_moonshine_engines
    silence = np.zeros(2 * 16_000, np.float32)
    recording = np.concatenate([part for utterance in utterances[:6] for part in (utterance.load(), silence)])
    assert len(recording) > 30 * 16_000
    with load_recognizer(engines / "tiny-moonshine-fp32.json", threads=1) as recognizer:
        lengths = []
        generate = recognizer.generate
        monkeypatch.setattr(recognizer, "generate", lambda audio: lengths.append(len(audio)) or generate(audio))
        assert isinstance(recognizer.transcribe(recording), str)
        assert recognizer.segmented_recordings == 1 and recognizer.decoding()["segmented_recordings"] == 1
    assert len(lengths) >= 6 and max(lengths) <= 20 * 16_000  # one per utterance at least, none over a segment's cap


def test_moonshine_profiles_name_the_audio_and_the_encoders_frames_apart(tiny_moonshine_engines):
    from asr_engines.engines.profiles import dimension_ranges, graph_profile

    onnx_dir, _ = tiny_moonshine_engines
    durations = [2.0, 5.0, 16.4]
    encoder = dimension_ranges("moonshine", "encoder", onnx_dir, durations)
    decoder = dimension_ranges("moonshine", "decoder_with_past", onnx_dir, durations)
    assert encoder["encoder_sequence_length"] == (32_000, 80_000, 480_000)  # up to one 30 s input
    assert decoder["audio_sequence_length"] == encoder["encoder_sequence_length"]
    assert decoder["encoder_sequence_length"] == tuple(moonshine_frames(samples) for samples in (32_000, 80_000, 480_000))
    assert decoder["past_decoder_sequence_length"][2] == 195  # 30 s at 6.5 tokens per second
    profile = graph_profile(onnx_dir / "decoder_with_past_model.onnx", decoder)
    assert profile.shapes["encoder_attention_mask"][2] == (1, 480_000)
    assert profile.shapes["encoder_hidden_states"][2] == (1, moonshine_frames(480_000), 64)
