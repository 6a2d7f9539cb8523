"""Choosing among stored rows: filters, the latest row per engine, the Pareto front, and the pick under a budget."""

from __future__ import annotations

import operator
import re
from dataclasses import asdict, dataclass

from measure.results import BenchRow

_OPERATORS = {"!=": operator.ne, ">=": operator.ge, "<=": operator.le, "=": operator.eq, ">": operator.gt, "<": operator.lt}


def memory_mb(row: BenchRow) -> float:
    """The footprint a budget is checked against: the larger of peak RSS and system memory above idle
    (on a Jetson the GPU's share shows only in system memory), plus NVML's GPU memory where there is one."""
    return max(row.peak_rss_mb, row.system_mem_mb or 0.0) + (row.gpu_mem_mb or 0.0)


def energy_j(row: BenchRow) -> float | None:
    """Net energy of one clean pass where measured, else gross, else None."""
    return row.energy_net_j if row.energy_net_j is not None else row.energy_j


def filter_rows(rows: list[BenchRow], conditions: list[str]) -> list[BenchRow]:
    """Keep rows matching every `field<op>value` (ops: = != < > <= >=; `~` for a substring)."""
    kept = rows
    for condition in conditions:
        match = re.fullmatch(r"\s*(\w+)\s*(!=|>=|<=|=|>|<|~)\s*(.*?)\s*", condition)
        if match is None:
            raise ValueError(f"bad --where {condition!r}: use field=value, field>value, field~text")
        field, op, wanted = match.groups()
        if kept and field not in asdict(kept[0]):
            raise ValueError(f"--where: no field {field!r} in the results")
        kept = [row for row in kept if _matches(getattr(row, field), op, wanted)]
    return kept


def _matches(value, op: str, wanted: str) -> bool:
    if value is None:
        return False
    if op == "~":
        return wanted in str(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _OPERATORS[op](value, float(wanted))
    return _OPERATORS[op](str(value), wanted)


def latest(rows: list[BenchRow]) -> list[BenchRow]:
    """The newest row per (device, engine, noise condition): what a report shows unless asked for all runs."""
    newest: dict[tuple, BenchRow] = {}
    for row in rows:  # rows come oldest first
        newest[(row.device_id, row.engine, row.noise)] = row
    return list(newest.values())


def pareto_front(rows: list[BenchRow], noisy: bool = False) -> list[BenchRow]:
    """Rows no other row beats on WER, energy and memory together (lower is better on all three).

    Rows without an energy figure compete on WER and memory alone."""

    def objectives(row: BenchRow) -> tuple[float, float, float]:
        wer = row.wer_noisy if noisy and row.wer_noisy is not None else row.wer_clean
        energy = energy_j(row)
        return wer, energy if energy is not None else 0.0, memory_mb(row)

    points = [(row, objectives(row)) for row in rows]
    return [row for row, mine in points
            if not any(all(o <= m for o, m in zip(other, mine)) and other != mine for _, other in points)]


@dataclass(frozen=True)
class Pick:
    """The chosen row (None when nothing fits) and, per engine, why it was not chosen."""

    chosen: BenchRow | None
    reasons: dict[str, str]


def pick(rows: list[BenchRow], max_wer: float | None = None, max_memory_mb: float | None = None, noisy: bool = False) -> Pick:
    """The engine within the WER and memory budget with the least energy; and why each other one lost."""
    reasons, fitting = {}, []
    for row in rows:
        wer = row.wer_noisy if noisy else row.wer_clean
        label = "noisy WER" if noisy else "clean WER"
        if wer is None:
            reasons[row.engine] = f"no {label} measured"
        elif max_wer is not None and wer > max_wer:
            reasons[row.engine] = f"{label} {wer:.2f} % > {max_wer:g} %"
        elif max_memory_mb is not None and memory_mb(row) > max_memory_mb:
            reasons[row.engine] = f"memory {memory_mb(row):.0f} MB > {max_memory_mb:g} MB"
        elif energy_j(row) is None:
            reasons[row.engine] = f"fits, but no energy was measured ({row.energy_note or row.meter})"
        else:
            fitting.append(row)
    fitting.sort(key=energy_j)
    chosen = fitting[0] if fitting else None
    for row in fitting[1:]:
        reasons[row.engine] = f"fits, but {energy_j(row):.2f} J > {energy_j(chosen):.2f} J of {chosen.engine}"
    return Pick(chosen, reasons)
