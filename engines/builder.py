"""The builder protocol: one graph of one engine in, one engine file out. One implementation per backend."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from asr_engines.calibration.stream import CalibrationStream
from asr_engines.families import GraphPart
from asr_engines.variants import Precision, Variant


@dataclass(frozen=True)
class GraphJob:
    """One ONNX graph of an exported model, to be built as `variant` into `target` (inside a staging folder).

    `published_dir` is where the finished engine will appear: a backend may reuse what an earlier build of
    the same inputs left there (TensorRT's calibration cache)."""

    export_dir: Path
    family: str
    part: GraphPart
    variant: Variant
    target: Path
    calibration: CalibrationStream | None
    published_dir: Path
    float_nodes: dict[str, str] | None = None  # int8: the nodes that stay float, and why (int8_budget.py decided)
    prepared: Path | None = None  # the exported graph after the family's own passes (build.py), if it has any

    @property
    def source(self) -> Path:
        return self.prepared or self.export_dir / self.part.file


class BuilderUnavailable(RuntimeError):
    """The backend's libraries are not installed here."""


class Builder(Protocol):
    backend: str
    suffix: str  # engine file ending: ".onnx", ".plan"
    isolate_builds: bool  # build each graph in a fresh process, so its memory is returned (8 GB boards)
    def version(self) -> str: ...

    def greedy_head(self, variant: Variant) -> str:
        """The head Whisper's decoders get in a `variant` engine, where one is the faster way: `argmax`
        (passes/token_head.py), `screened` (the KV-cache decoder's: passes/screened_head.py) or "" (none)."""
        ...

    def fuses_attention(self, variant: Variant) -> bool:
        """Whether a `variant` engine's graphs take the fused attention (passes/attention.py) where their part allows."""
        ...

    def variants(self, precision: Precision) -> list[Variant]:
        """The engines one precision yields (ONNX Runtime's int8 gives `int8` and `int8-qdq`)."""
        ...

    def part_variants(self, variant: Variant, part: GraphPart) -> tuple[Variant, ...]:
        """What a graph of a `variant` engine may be built as, fastest first (build.py keeps the first whose measured
        WER cost holds, the last where none is measured): graphs that take no calibration (Whisper's decoders) get
        the backend's choice for them in int8 engines."""
        ...

    def build(self, job: GraphJob) -> dict:
        """Write `job.target`; return details for the manifest, with `io` (inputs/outputs) among them.
        Extra files written beside the target are named in `extra_files` and published with it."""
        ...
