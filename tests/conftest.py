"""Shared fixtures: a tiny random wav2vec2 built from a config, its ONNX export, and its engines."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from asr_engines.calibration.datasets import DEFAULT_DATASET, load_dataset

SHARED_WHISPER = Path(__file__).resolve().parents[2] / "shared" / "models" / "whisper-tiny.en-hf"
#: tiny.en's config and tokenizer files without its weights (what the random Whisper needs): SHARED_WHISPER, or a copy
#: named by ASR_ENGINES_WHISPER_FILES where ../shared does not travel (`make gpu-kit` makes one, docs/gpu.md).
WHISPER_FILES = Path(os.environ.get("ASR_ENGINES_WHISPER_FILES") or SHARED_WHISPER)
# Commands run in this process (CliRunner) would make ONNX Runtime's process-wide thread pool, after which every
# session of the suite would have to use it (runtime/onnxruntime_engine.py, share_thread_pool): keep pools per session.
os.environ["ASR_ENGINES_OWN_THREAD_POOLS"] = "1"
VOCABULARY = ["<pad>", "<s>", "</s>", "<unk>", "|", *"ETAONIHSRDLUMWCFGYPBVK'XJQZ"]


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A two-layer wav2vec2 CTC model with random weights and a real English character vocabulary."""
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC, Wav2Vec2Processor

    folder = tmp_path_factory.mktemp("checkpoint") / "tiny"
    config = Wav2Vec2Config(
        hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
        conv_dim=(32,) * 7, vocab_size=len(VOCABULARY), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
    )
    torch.manual_seed(0)
    Wav2Vec2ForCTC(config).eval().save_pretrained(folder)
    (folder / "vocab.json").write_text(json.dumps({token: index for index, token in enumerate(VOCABULARY)}))
    Wav2Vec2Processor(
        feature_extractor=Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=False),
        tokenizer=Wav2Vec2CTCTokenizer(str(folder / "vocab.json")),
    ).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_onnx(tiny_checkpoint, tmp_path_factory) -> Path:
    from asr_engines.export import export_onnx, resolve_model

    out = tmp_path_factory.mktemp("onnx") / "tiny"
    report = export_onnx(resolve_model(str(tiny_checkpoint)), out)
    assert report.max_abs_diff is not None and report.max_abs_diff < 1e-3
    return out


@pytest.fixture(scope="session")
def tiny_engines(tiny_onnx, tmp_path_factory) -> Path:
    from asr_engines.engines.backends import make_builder
    from asr_engines.engines.build import CalibrationSettings, build_engines

    out = tmp_path_factory.mktemp("engines")
    build_engines(tiny_onnx, out, make_builder("onnxruntime", qdq=True), calibration=CalibrationSettings(count=8),
                  progress=False)
    return out


@pytest.fixture(scope="session")
def utterances():
    return load_dataset(DEFAULT_DATASET)


@pytest.fixture(scope="session")
def speech(utterances) -> np.ndarray:
    """Eight seconds of a real LibriSpeech utterance."""
    return utterances[0].load()[: 8 * 16_000]


@pytest.fixture(scope="session")
def real_whisper_onnx(tmp_path_factory) -> Path:
    """whisper tiny.en's real weights (from ../shared) exported once per test run."""
    if not SHARED_WHISPER.is_dir():
        pytest.skip(f"no real Whisper weights at {SHARED_WHISPER}")
    from asr_engines.export import export_onnx, resolve_model

    onnx_dir = tmp_path_factory.mktemp("tiny.en-onnx") / "whisper-tiny.en"
    export_onnx(resolve_model(str(SHARED_WHISPER)), onnx_dir, check=False)
    return onnx_dir


@pytest.fixture(scope="session")
def real_whisper_fp32(real_whisper_onnx, tmp_path_factory) -> Path:
    """The fp32 engine of real tiny.en, built once per test run: its manifest."""
    from asr_engines.engines.backends import make_builder
    from asr_engines.engines.build import build_engines

    (manifest,) = build_engines(real_whisper_onnx, tmp_path_factory.mktemp("tiny.en-engines"), make_builder("onnxruntime"),
                                ["fp32"], progress=False)
    return manifest


@pytest.fixture(scope="session")
def tiny_whisper(tmp_path_factory):
    """A two-layer random Whisper from a config, with tiny.en's tokenizer and generation settings."""
    if not (WHISPER_FILES / "tokenizer.json").is_file():
        pytest.skip(f"tiny.en's tokenizer files are needed from {WHISPER_FILES}")
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    folder = tmp_path_factory.mktemp("whisper") / "tiny-whisper"
    config = WhisperConfig.from_pretrained(WHISPER_FILES)
    config.update({"d_model": 64, "encoder_layers": 2, "decoder_layers": 2, "encoder_attention_heads": 2,
                   "decoder_attention_heads": 2, "encoder_ffn_dim": 128, "decoder_ffn_dim": 128})
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(config).eval()
    model.save_pretrained(folder)
    for name in ("generation_config.json", "tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt",
                 "added_tokens.json", "special_tokens_map.json", "preprocessor_config.json", "normalizer.json"):
        shutil.copyfile(WHISPER_FILES / name, folder / name)
    generation = json.loads((folder / "generation_config.json").read_text())
    generation["max_length"] = 24  # random weights rarely say end-of-text: keep decoding short
    (folder / "generation_config.json").write_text(json.dumps(generation))
    return folder


@pytest.fixture(scope="session")
def tiny_whisper_onnx(tiny_whisper, tmp_path_factory):
    from asr_engines.export import export_onnx, resolve_model

    onnx_dir = tmp_path_factory.mktemp("whisper-onnx") / "tiny-whisper"
    report = export_onnx(resolve_model(str(tiny_whisper)), onnx_dir)
    assert report.files == ["decoder_model.onnx", "decoder_with_past_model.onnx", "encoder_model.onnx"]
    assert report.max_abs_diff < 1e-3
    return onnx_dir


@pytest.fixture(scope="session")
def tiny_whisper_engines(tiny_whisper_onnx, tmp_path_factory):
    from asr_engines.engines.backends import make_builder
    from asr_engines.engines.build import CalibrationSettings, build_engines

    out = tmp_path_factory.mktemp("whisper-engines")
    build_engines(tiny_whisper_onnx, out, make_builder("onnxruntime", qdq=True), ["fp32", "int8"], CalibrationSettings(count=4),
                  progress=False)
    return out
