"""Choosing among stored rows: filters, the latest row per engine, the Pareto front, and the pick under a budget."""

from __future__ import annotations

import operator
import re
from dataclasses import asdict, dataclass

from asr_engines.measure.results import BenchRow

_OPERATORS = {"!=": operator.ne, ">=": operator.ge, "<=": operator.le, "=": operator.eq, ">": operator.gt, "<": operator.lt}


def memory_mb(row: BenchRow) -> float:
    """The footprint a budget is checked against: this engine's process, its peak RSS plus its GPU memory.
    Where the GPU's share cannot be read (a Jetson's nvmap without root), the system-wide figure above idle
    stands in for it if that figure is clean; a contaminated one never does (memory_doubt says so)."""
    if row.gpu_mem_mb is not None or row.device == "cpu" or row.system_mem_note:
        return row.peak_rss_mb + (row.gpu_mem_mb or 0.0)
    return max(row.peak_rss_mb, row.system_mem_mb or 0.0)


def memory_doubt(row: BenchRow) -> str:
    """Why memory_mb may fall short of what the engine needs ("" when it is the engine's own, complete)."""
    if row.gpu_mem_mb is None and row.device != "cpu" and row.system_mem_note:
        return f"its GPU memory is not in the figure ({row.system_mem_note})"
    return ""


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

    Energy counts only between rows that both have it: a row without an energy figure competes on WER and
    memory alone, and can never push a measured row off the front (it cannot show it used less energy)."""

    def objectives(row: BenchRow) -> tuple[float, float | None, float]:
        return (row.wer_noisy if noisy and row.wer_noisy is not None else row.wer_clean), energy_j(row), memory_mb(row)

    def beats(other: tuple, mine: tuple) -> bool:
        if other[1] is None and mine[1] is not None:
            return False
        pairs = [(other[0], mine[0]), (other[2], mine[2])] + ([(other[1], mine[1])] if other[1] is not None and mine[1] is not None else [])
        return all(o <= m for o, m in pairs) and any(o < m for o, m in pairs)

    points = [(row, objectives(row)) for row in rows]
    return [row for row, mine in points if not any(beats(other, mine) for _, other in points)]


@dataclass(frozen=True)
class Pick:
    """The chosen row (None when nothing fits), per engine why it was not chosen, and what the choice rested on."""

    chosen: BenchRow | None
    reasons: dict[str, str]
    basis: str = ""


def pick(rows: list[BenchRow], max_wer: float | None = None, max_memory_mb: float | None = None, noisy: bool = False) -> Pick:
    """The engine within the WER and memory budget with the least energy; and why each other one lost.

    Without an energy figure for any fitting engine (no meter on this machine) the choice rests on what was
    measured: the fastest (RTFx) of those within budget, then the lowest WER; `basis` says energy was not part
    of it. An engine whose memory figure lacks its GPU share (memory_doubt) is not judged against a memory budget."""
    label = "noisy WER" if noisy else "clean WER"
    reasons, fitting = {}, []
    for row in rows:
        wer = row.wer_noisy if noisy else row.wer_clean
        if wer is None:
            reasons[row.engine] = f"no {label} measured"
        elif max_wer is not None and wer > max_wer:
            reasons[row.engine] = f"{label} {wer:.2f} % > {max_wer:g} %"
        elif max_memory_mb is not None and memory_doubt(row):
            reasons[row.engine] = f"memory cannot be judged: {memory_doubt(row)}"
        elif max_memory_mb is not None and memory_mb(row) > max_memory_mb:
            reasons[row.engine] = f"memory {memory_mb(row):.0f} MB > {max_memory_mb:g} MB"
        else:
            fitting.append(row)
    measured = [row for row in fitting if energy_j(row) is not None]
    if measured:
        measured.sort(key=energy_j)
        chosen = measured[0]
        for row in fitting:
            if row is not chosen and energy_j(row) is not None:
                reasons[row.engine] = f"fits, but {energy_j(row):.2f} J > {energy_j(chosen):.2f} J of {chosen.engine}"
            elif row is not chosen:
                reasons[row.engine] = f"fits, but no energy was measured ({row.energy_note or row.meter})"
        return Pick(chosen, reasons, "least energy per pass among the engines within budget")
    if not fitting:
        return Pick(None, reasons, "")
    fitting.sort(key=lambda row: (-row.rtfx, row.wer_noisy if noisy else row.wer_clean))
    chosen = fitting[0]
    for row in fitting[1:]:
        reasons[row.engine] = f"fits, but RTFx {row.rtfx:.1f} < {chosen.rtfx:.1f} of {chosen.engine}"
    return Pick(chosen, reasons, "energy was not measured for these rows, so it is not part of the choice: the fastest "
                                 f"(RTFx) within the {label} and memory budget")
