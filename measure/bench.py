"""The bench's pieces around one engine's measurement (measurement.py): the idle baseline before the engines,
the table printed after them. `asr-engines bench` (asr_engines/commands/bench.py) runs them."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

from asr_engines.measure.meters import open_meter
from asr_engines.measure.results import BenchRow, build_choices

TABLE_COLUMNS = (("engine", "{}"), ("precision", "{}"), ("wer_clean", "{:.2f}"), ("wer_noisy", "{:.2f}"),
                 ("rtfx", "{:.1f}"), ("latency_p50_ms", "{:.0f}"), ("latency_p90_ms", "{:.0f}"),
                 ("load_s", "{:.2f}"), ("peak_rss_mb", "{:.0f}"), ("energy_j", "{:.1f}"), ("energy_net_j", "{:.1f}"),
                 ("machine_quiet", "{}"))


def measure_baseline(meter_name: str, meter_root: str, sample_hz: float | None, seconds: float) -> tuple[float | None, str]:
    """Mean idle power (W, total rail) over `seconds`, and the meter's name; None when it has no energy."""
    meter = open_meter(meter_name, Path(meter_root), sample_hz)
    if not meter.available or seconds <= 0:
        return None, meter.name
    meter.start()
    try:
        with meter.window("baseline") as window:
            time.sleep(seconds)
    finally:
        meter.stop()
    total = window.measurement.total_j
    return (total / window.measurement.duration_s if total is not None else None), meter.name


def format_table(rows: list[BenchRow]) -> str:
    """The rows as an aligned text table of the main columns ("-" where not measured)."""
    cells = [[name for name, _ in TABLE_COLUMNS]]
    for row in rows:
        record = asdict(row)
        cells.append(["-" if record[name] is None else style.format(record[name]) for name, style in TABLE_COLUMNS])
    widths = [max(len(line[index]) for line in cells) for index in range(len(TABLE_COLUMNS))]
    choices = [f"{row.engine}: {build_choices(row)}" for row in rows if build_choices(row) != "-"]
    return "\n".join(["  ".join(cell.ljust(width) for cell, width in zip(line, widths)) for line in cells]
                     + (["decided by measurement at build (WER points over fp32, clean/noisy):", *choices] if choices else []))

