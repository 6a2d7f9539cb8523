"""Shared fixtures: a tiny random wav2vec2 built from a config, its ONNX export, and its engines."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from calibration.datasets import DEFAULT_DATASET, load_dataset

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
    from export import export_onnx, resolve_model

    out = tmp_path_factory.mktemp("onnx") / "tiny"
    report = export_onnx(resolve_model(str(tiny_checkpoint)), out)
    assert report.max_abs_diff is not None and report.max_abs_diff < 1e-3
    return out


@pytest.fixture(scope="session")
def tiny_engines(tiny_onnx, tmp_path_factory) -> Path:
    from engines.build import CalibrationSettings, build_engines
    from engines.builder import make_builder

    out = tmp_path_factory.mktemp("engines")
    build_engines(tiny_onnx, out, make_builder("onnxruntime"), calibration=CalibrationSettings(count=8), progress=False)
    return out


@pytest.fixture(scope="session")
def utterances():
    return load_dataset(DEFAULT_DATASET)


@pytest.fixture(scope="session")
def speech(utterances) -> np.ndarray:
    """Eight seconds of a real LibriSpeech utterance."""
    return utterances[0].load()[: 8 * 16_000]
