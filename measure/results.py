"""Bench results as typed rows until the edge, where they become JSON and CSV."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from asr_engines.files import write_text_atomic
from asr_engines.variants import Precision, Variant


@dataclass
class BenchRow:
    """One engine measured on one dataset. Units are in the names: _s seconds, _ms milliseconds,
    _mb MiB, _j joules, _w watts; WER in percent. None means "not measured here" (see the notes)."""

    engine: str
    model: str
    backend: str
    precision: Precision  # what ran: the built variant's, or for TensorRT the lowest its layers really run at
    variant: Variant  # what was built
    device: str
    threads: int | None
    utterances: int
    audio_s: float
    wer_clean: float
    wer_noisy: float | None  # mean over the noise draws
    wer_noisy_std: float | None
    wer_noisy_draws: list[float]
    noise: str | None
    rtfx: float  # audio seconds / inference seconds (features + model + decoding), clean pass
    latency_p50_ms: float
    latency_p90_ms: float
    latency_p99_ms: float
    load_s: float
    peak_rss_mb: float  # this engine's process
    system_mem_mb: float  # system-wide: peak MemTotal-MemAvailable above idle, every other process included
    gpu_mem_mb: float | None  # this engine's process on the GPU (NVML; nvmap on a Jetson, as root); None: unreadable
    energy_j: float | None  # gross, one clean pass over the dataset (the hardware counter where there is one)
    energy_net_j: float | None  # minus baseline_w x duration
    baseline_w: float | None
    mean_power_w: float | None
    j_per_audio_s: float | None  # net
    j_per_utterance: float | None  # net
    energy_rails_j: dict[str, float] | None
    energy_counter_j: float | None  # the hardware counter's figure, where the source has one (NVML, RAPL)
    energy_trapezoid_j: float | None  # trapezoids of the sampled power over the same window
    energy_reliable: bool
    energy_repeats: int  # clean passes inside the energy window (short sets are repeated)
    energy_note: str
    meter: str
    rail: str  # which rail energy_j is: a rail name or "sum of rails"
    gpu_rail: str | None
    sample_hz: float | None
    sensor_faults: int
    sensor_averaging: str = ""  # what the sensor itself averaged over before we sampled it
    meter_info: dict = field(default_factory=dict)  # the meter's settings (Meter.info())
    system_mem_note: str = ""  # why system_mem_mb cannot be trusted ("contaminated: ..."), or ""
    run_id: str = ""
    device_id: str = ""
    started_at: str = ""
    dataset: str = ""
    machine_quiet: bool | None = None  # other processes took under measure.machine_load.QUIET_BELOW cores while timed
    machine_load: dict = field(default_factory=dict)  # MachineLoad.as_dict() over the timed clean pass
    extra: dict = field(default_factory=dict)


def write_results(rows: list[BenchRow], out_dir: Path) -> None:
    """`results.json` (a list of rows) and `results.csv` (nested values as JSON), each written atomically."""
    records = [asdict(row) for row in rows]
    write_text_atomic(out_dir / "results.json", json.dumps(records, indent=2) + "\n")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[item.name for item in fields(BenchRow)])
    writer.writeheader()
    for record in records:
        writer.writerow({key: json.dumps(value) if isinstance(value, (dict, list)) else value for key, value in record.items()})
    write_text_atomic(out_dir / "results.csv", buffer.getvalue())


def row_from_record(record: dict) -> BenchRow:
    """A BenchRow from its dict form (fields added by later versions are ignored)."""
    names = {item.name for item in fields(BenchRow)}
    row = BenchRow(**{key: value for key, value in record.items() if key in names})
    row.precision, row.variant = Precision(row.precision), Variant(row.variant)
    return row


def build_choices(row: BenchRow) -> str:
    """What the engine's build decided by measurement, and what it measured, in WER points over fp32 clean/noisy:
    the int8 WER budget (its last round), the CPU int8 engine's encoder form and Whisper's encoder trim margin
    (their costs against the same model's fp32 graphs on whole windows)."""
    said = []
    budget = row.extra.get("int8_budget")
    if budget:
        last = (budget.get("rounds") or [{}])[-1]
        cost = f" {last['cost_clean']:+.2f}/{last['cost_noisy']:+.2f}" if "cost_clean" in last else ""
        said.append(f"int8 budget {budget['wer_points']}: {'met' if budget.get('met') else 'not met'}{cost}"
                    if budget.get("met") is not None else f"int8 budget: {budget.get('note')}")
    forms = row.extra.get("int8_forms")
    if forms:
        encoder = forms["kept"].get("encoder")
        tried = [f"{entry['forms'].get('encoder')} " + ", ".join(
                     f"{'' if setting == 'as built' else setting + (' ' if setting == 'whole' else ' s ')}"
                     f"{costs['cost_clean']:+.2f}/{costs['cost_noisy']:+.2f}" for setting, costs in entry["tried"].items())
                 for entry in forms["tried"] if entry.get("judged")]
        said.append(f"encoder {encoder}" + (f" (tried {', '.join(tried)})" if tried else f": {forms.get('note') or 'not judged'}"))
    trim = (row.extra.get("decoding") or {}).get("trim_decided")
    if trim and trim.get("judged"):
        margin = "whole window" if trim["margin_s"] is None else f"{trim['margin_s']:g} s"
        said.append(f"trim {margin} {trim['cost_clean']:+.2f}/{trim['cost_noisy']:+.2f}")
    elif trim:
        said.append(f"trim {trim.get('note')}")
    return "; ".join(said) or "-"
