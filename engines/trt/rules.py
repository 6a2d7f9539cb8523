"""The decisions around a TensorRT build that need no TensorRT: versions, INT8 path, workspace, calibration
batches, and reading the engine inspector's JSON (shape profiles are in profiles.py). Kept apart so they are
tested everywhere."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator

import numpy as np

from asr_engines.calibration.stream import CalibrationStream
from asr_engines.engines.profiles import ShapeProfile
from asr_engines.variants import Precision, Variant


def version_tuple(version: str) -> tuple[int, int]:
    """(major, minor) of a TensorRT version string."""
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


#: TensorRT 8.5's ONNX parser has no LayerNormalization, which every opset-17 export here uses.
MINIMUM_TENSORRT = (8, 6)
#: Engine layers that move or reshape data: they say nothing about the arithmetic precision that ran.
_DATA_MOVEMENT = re.compile(r"reformat|noop|no_op|shape|constant|copy|signal|wait", re.IGNORECASE)
#: What an INT8 kernel's tactic name contains (implicit GEMM/conv kernels: i8i8, imma, int8).
_INT8_TACTIC = re.compile(r"i8i8|imma|int8|_i8_|i8f32|i8f16", re.IGNORECASE)
_DATATYPES = {"int8": Precision.INT8, "fp16": Precision.FP16, "half": Precision.FP16,
              "fp32": Precision.FP32, "float": Precision.FP32}


def tensor_precision(tensor: dict) -> str:
    """int8, fp16, fp32 or other, from a layer input/output of the inspector's JSON: `Format/Datatype` up to
    10.x ("Row major linear FP32", "Channel major INT8 format where channel % 32 == 0"), `DataType` beside
    `Format` from 11 ("Float", "Half", "Int8")."""
    text = str(tensor.get("DataType") or tensor.get("Format/Datatype") or "").lower()
    for word, precision in _DATATYPES.items():
        if re.search(rf"\b{word}\b", text):
            return str(precision)
    return "other"


def _moves_data(layer: dict) -> bool:
    return bool(_DATA_MOVEMENT.search(str(layer.get("LayerType", "")))) or "reformat" in str(layer.get("Name", "")).lower()


def _fused(layer: dict) -> bool:
    """A Myelin region (8.6 prints it as one ForeignNode): many ops, its kernels not listed."""
    described = " ".join(str(layer.get(key, "")) for key in ("LayerType", "ParameterType", "Name")).lower()
    return "foreignnode" in described or "myelin" in described


def count_layer_precisions(inspector: dict) -> dict[str, int]:
    """Layers per precision from TensorRT's engine inspector JSON (DETAILED verbosity).

    A layer counts at the precision of its first input, as TensorRT's engine explorer counts it (an INT8
    GEMM often outputs fp16 or fp32); reformat, shape and no-op layers count as `data movement`; fused
    regions that 8.6 shows as one ForeignNode count as `fused`."""
    counts: Counter[str] = Counter()
    for layer in inspector.get("Layers", []):
        if not isinstance(layer, dict):
            counts["unknown"] += 1  # names only: the plan was not built with DETAILED verbosity
        elif _moves_data(layer):
            counts["data movement"] += 1
        elif _fused(layer) and not _INT8_TACTIC.search(str(layer.get("TacticName", ""))):
            counts["fused"] += 1
        else:
            inputs = layer.get("Inputs") or [{}]
            precision = tensor_precision(inputs[0])
            counts[str(Precision.INT8) if _INT8_TACTIC.search(str(layer.get("TacticName", ""))) else precision] += 1
    return dict(counts)


class PrecisionMissing(RuntimeError):
    """An INT8 build whose layers show no INT8 kernel (with strict checking)."""


def check_int8_ran(variant: Variant, inspector: dict, strict: bool = False) -> str:
    """Whether an int8 plan runs INT8 kernels: "" when it does (or was not asked to), else a warning.

    Judged by each compute layer's input formats and tactic name, never by its first output (INT8 GEMMs and
    convs often output fp16/fp32). Fused regions that hide their kernels only make the answer unknown. With
    `strict` a plan with no INT8 evidence raises PrecisionMissing: it would be an fp16 engine under an int8 name."""
    if variant.precision != Precision.INT8:
        return ""
    counts = count_layer_precisions(inspector)
    if counts.get(Precision.INT8, 0):
        return ""
    if counts.get("fused", 0) or counts.get("unknown", 0):
        note = (f"no layer shows an INT8 kernel, but {counts.get('fused', 0) + counts.get('unknown', 0)} fused or "
                "undescribed regions hide theirs: check the plan's speed against the fp16 plan")
    else:
        note = f"0 of {sum(counts.values())} layers run INT8 ({counts}): this is a higher-precision plan under an int8 name"
    if strict:
        raise PrecisionMissing(note)
    import warnings

    warnings.warn(f"int8 plan: {note}", stacklevel=2)
    return f"warning: {note}"
