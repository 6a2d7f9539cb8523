"""What the runtime needs besides the graph, read once from the export folder into the sidecar.

The runtime then needs neither transformers nor the processor files: the CTC vocabulary and the
front end's settings travel inside the sidecar.
"""

from __future__ import annotations

import json
from pathlib import Path

from calibration.features import CTCFrontEnd, FrontEnd


class AssetsError(ValueError):
    """The export folder lacks a file the engines need."""


def read_export(onnx_dir: Path) -> dict:
    """The export report (`export.json`) that `python -m export` wrote."""
    try:
        return json.loads((onnx_dir / "export.json").read_text())
    except FileNotFoundError:
        raise AssetsError(f"{onnx_dir}: no export.json; make it with `python -m export MODEL --out {onnx_dir}`") from None


def graph_parts(export: dict) -> dict[str, str]:
    """The ONNX graphs an engine is made of, by part name."""
    if export["family"] == "ctc":
        return {"model": "model.onnx"}
    raise AssetsError(f"model family {export['family']!r} has no engine layout yet")


def ctc_front_end(onnx_dir: Path) -> FrontEnd:
    """The wav2vec2-family front end as the processor config says (normalise or not)."""
    config = _json(onnx_dir, "preprocessor_config.json")
    if config.get("sampling_rate", 16_000) != 16_000:
        raise AssetsError(f"{onnx_dir}: the model expects {config['sampling_rate']} Hz audio; the pipeline feeds 16 kHz")
    return CTCFrontEnd(do_normalize=bool(config.get("do_normalize", True)))


def ctc_decoder(onnx_dir: Path) -> dict:
    """The CTC vocabulary (token by id), blank id, word delimiter and tokens dropped from text."""
    vocab = _json(onnx_dir, "vocab.json")
    if vocab and all(isinstance(value, dict) for value in vocab.values()):
        raise AssetsError(f"{onnx_dir}/vocab.json is multilingual (one vocabulary per language); pick one first")
    settings = _json(onnx_dir, "tokenizer_config.json")
    tokens = [""] * (max(vocab.values()) + 1)
    for token, index in vocab.items():
        tokens[index] = token
    pad = settings.get("pad_token", "<pad>")
    special = {settings.get(key) for key in ("bos_token", "eos_token", "unk_token", "pad_token")}
    return {
        "kind": "ctc",
        "vocabulary": tokens,
        "blank_id": vocab.get(pad, 0),
        "word_delimiter": settings.get("word_delimiter_token", "|"),
        "dropped_tokens": sorted(token for token in special if token in vocab),
    }


def _json(folder: Path, name: str) -> dict:
    try:
        return json.loads((folder / name).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AssetsError(f"{folder}: missing {name} (the export writes the processor files beside the ONNX)") from None
