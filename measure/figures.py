"""The study's figures from stored rows (matplotlib, PNG). Each function returns what it plotted, read back
from the axes, so tests check the data and not just that a file exists."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asr_engines.measure.results import BenchRow
from asr_engines.measure.selection import energy_j, memory_mb
from asr_engines.variants import Variant


@dataclass(frozen=True)
class Figure:
    """A written figure and the data on it: bar heights or scatter points, by series."""

    path: Path
    series: dict[str, list[float]]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _bars(ax, groups: list[str], series: dict[str, list[float]], ylabel: str) -> None:
    width = 0.8 / max(len(series), 1)
    for index, (name, values) in enumerate(series.items()):
        ax.bar(np.arange(len(groups)) + index * width, [np.nan if v is None else v for v in values], width, label=name)
    ax.set_xticks(np.arange(len(groups)) + width * (len(series) - 1) / 2, groups, rotation=30, ha="right")
    ax.set_ylabel(ylabel)
    ax.legend()


def _save(fig, path: Path, axes: list) -> Figure:
    series = {}
    for ax in axes:
        for container in ax.containers:
            series[f"{ax.get_ylabel()}|{container.get_label()}"] = [float(bar.get_height()) for bar in container]
        for collection in ax.collections:
            series[f"{ax.get_ylabel()}|points"] = [tuple(map(float, point)) for point in collection.get_offsets()]
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    _pyplot().close(fig)
    return Figure(path, series)


def wer_clean_noisy(rows: list[BenchRow], path: Path) -> Figure:
    """Fig. 4 of the study: WER clean and noisy per engine."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(6, len(rows) * 0.8), 4))
    _bars(ax, [row.engine for row in rows], {"clean": [row.wer_clean for row in rows],
                                             "noisy": [row.wer_noisy for row in rows]}, "WER %")
    ax.set_title("WER, clean vs noisy")
    return _save(fig, path, [ax])


def _by_model_and_variant(rows: list[BenchRow], value: Callable[[BenchRow], float | None]) -> tuple[list[str], dict]:
    """Models along the axis, one bar per variant (int8 and int8-qdq are different engines)."""
    models = sorted({row.model for row in rows})
    variants = [variant for variant in Variant if any(row.variant == variant for row in rows)]
    table = {str(variant): [next((value(r) for r in rows if r.model == m and r.variant == variant), None) for m in models]
             for variant in variants}
    return models, table


def energy_per_precision(rows: list[BenchRow], path: Path) -> Figure:
    """Fig. 5: energy of one clean pass over the dataset, per model and precision (net of idle where measured)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    models, table = _by_model_and_variant(rows, energy_j)
    if any(value is not None for values in table.values() for value in values):
        _bars(ax, models, table, "energy J")
    else:
        ax.set_ylabel("energy J")
        ax.text(0.5, 0.5, "energy not measured\n(no power meter on the device that ran these rows)",
                ha="center", va="center", transform=ax.transAxes)
        ax.set_xticks([])
    ax.set_title("Energy per precision (one clean pass)")
    return _save(fig, path, [ax])


def speed_and_memory(rows: list[BenchRow], path: Path) -> Figure:
    """Fig. 7: RTF (inference s / audio s) and peak memory per model and precision."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    models, rtf = _by_model_and_variant(rows, lambda row: 1.0 / row.rtfx)
    _bars(left, models, rtf, "RTF")
    models, memory = _by_model_and_variant(rows, memory_mb)
    _bars(right, models, memory, "memory MB")
    left.set_title("Real-time factor (lower is faster)")
    right.set_title("Peak memory")
    return _save(fig, path, [left, right])


def wer_vs_energy(rows: list[BenchRow], front: list[BenchRow], path: Path) -> Figure:
    """Fig. 8: WER against energy, coloured by RTF, sized by memory; the Pareto front ringed."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 5))
    measured = [row for row in rows if energy_j(row) is not None]
    if measured:
        points = ax.scatter([energy_j(r) for r in measured], [r.wer_clean for r in measured],
                            c=[1.0 / r.rtfx for r in measured], s=[max(20.0, memory_mb(r) / 5) for r in measured],
                            cmap="viridis", edgecolors=["red" if r in front else "none" for r in measured])
        fig.colorbar(points, label="RTF")
        for row in measured:
            ax.annotate(row.engine, (energy_j(row), row.wer_clean), fontsize=7)
    else:
        ax.text(0.5, 0.5, "no energy measured in these rows", ha="center", transform=ax.transAxes)
    ax.set_xlabel("energy J (one clean pass)")
    ax.set_ylabel("WER %")
    ax.set_title("WER vs energy (size: memory, red ring: Pareto front)")
    return _save(fig, path, [ax])
