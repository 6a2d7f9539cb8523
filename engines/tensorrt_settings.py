"""The decisions around a TensorRT build that need no TensorRT: INT8 path, workspace, calibration batches
and cache, layer-precision counts (shape profiles are in profiles.py). Kept apart so they are tested everywhere."""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Iterator

import numpy as np

from calibration.stream import CalibrationStream
from engines.profiles import ShapeProfile


def version_tuple(version: str) -> tuple[int, int]:
    major, minor = (version.split(".") + ["0"])[:2]
    return int(major), int(minor)


def choose_int8_mode(tensorrt_version: str, requested: str = "auto") -> str:
    """`implicit` (entropy calibrator, TensorRT <= 10) or `explicit` (Q/DQ ONNX, TensorRT >= 10).

    `auto` takes explicit from 10 on: implicit calibration is deprecated from 10.1 and silently gave
    FP16 engines under an INT8 name in a public project on 10; it is gone in 11.
    """
    major = version_tuple(tensorrt_version)[0]
    if requested == "auto":
        return "explicit" if major >= 10 else "implicit"
    if requested == "implicit" and major >= 11:
        raise ValueError(f"TensorRT {tensorrt_version} has no implicit INT8 (calibrators were removed in 11); use explicit")
    if requested == "explicit" and major < 10:
        raise ValueError(f"TensorRT {tensorrt_version} predates strongly typed Q/DQ builds; use implicit")
    if requested not in ("implicit", "explicit"):
        raise ValueError(f"int8 mode must be auto, implicit or explicit, not {requested!r}")
    return requested


def strongly_typed(tensorrt_version: str) -> bool:
    """Whether to build strongly typed networks (precision from the ONNX): from TensorRT 11, the only kind.

    10.x has them too, but our Q/DQ ONNX is fp32 outside its Q/DQ pairs: strongly typed, those layers would
    run fp32; weakly typed with the fp16 flag (deprecated from 10.12, still there) TensorRT runs them fp16."""
    return version_tuple(tensorrt_version)[0] >= 11


def workspace_bytes(free_bytes: int, fraction: float = 0.5, cap_bytes: int = 4 << 30) -> int:
    """Builder workspace: a share of free memory (an Orin Nano shares ~7.6 GB with the OS), capped."""
    if not 0 < fraction <= 1:
        raise ValueError("workspace fraction must be in (0, 1]")
    return int(min(free_bytes * fraction, cap_bytes))


def calibration_batches(stream: CalibrationStream, profile: ShapeProfile) -> Iterator[dict[str, np.ndarray]]:
    """The stream's inputs at the profile's OPT shapes (each axis cropped or zero-padded), float32, one per batch."""
    for sample in stream:
        batch = {}
        for name, values in sample.items():
            values = np.asarray(values, np.float32)
            shape = profile.opt(name)
            if values.ndim != len(shape):
                raise ValueError(f"calibration input {name!r} has {values.ndim} axes; the profile has {len(shape)}")
            cropped = values[tuple(slice(0, n) for n in shape)]
            batch[name] = np.zeros(shape, np.float32)
            batch[name][tuple(slice(0, n) for n in cropped.shape)] = cropped
        yield batch


def parse_calibration_cache(text: str) -> tuple[str, dict[str, float]]:
    """A TensorRT calibration cache: header (`TRT-8501-EntropyCalibration2`) and scale per tensor.

    Each line after the header is `tensor: <big-endian float32 in hex>`.
    """
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or not lines[0].startswith("TRT-"):
        raise ValueError("not a TensorRT calibration cache (no TRT- header)")
    scales = {}
    for line in lines[1:]:
        name, _, hex_value = line.rpartition(":")
        scales[name.strip()] = struct.unpack(">f", bytes.fromhex(hex_value.strip()))[0]
    return lines[0], scales


def format_calibration_cache(header: str, scales: dict[str, float]) -> str:
    return header + "\n" + "".join(f"{name}: {struct.pack('>f', scale).hex()}\n" for name, scale in scales.items())


def count_layer_precisions(inspector: dict) -> dict[str, int]:
    """Layers per precision from TensorRT's engine inspector JSON (DETAILED verbosity): each layer counts
    at the precision of its first output (int8, fp16, fp32, other)."""
    counts: Counter[str] = Counter()
    for layer in inspector.get("Layers", []):
        if isinstance(layer, str):
            counts["unknown"] += 1
            continue
        outputs = layer.get("Outputs") or [{}]
        fmt = str(outputs[0].get("Format/Datatype", "")).lower()
        if "int8" in fmt:
            counts["int8"] += 1
        elif "fp16" in fmt or "half" in fmt:
            counts["fp16"] += 1
        elif "fp32" in fmt or "float" in fmt:
            counts["fp32"] += 1
        else:
            counts["other"] += 1
    return dict(counts)


class PrecisionMissing(RuntimeError):
    """A build that asked for a precision and got no layer running at it."""


def check_precision_counts(asked: str, counts: dict[str, int]) -> None:
    """Say loudly when an INT8 or FP16 build has no layer at that precision (an FP16 engine named INT8)."""
    if asked in ("int8", "fp16") and counts.get(asked, 0) == 0:
        raise PrecisionMissing(
            f"asked for {asked} but the engine runs 0 of {sum(counts.values())} layers at {asked} ({counts}); "
            "it would be a higher-precision engine under a lower-precision name"
        )
