"""The study's figures and tables from the results store (`asr-engines report`)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from asr_engines.files import write_text_atomic
from asr_engines.measure import figures
from asr_engines.measure.results import BenchRow, build_choices
from asr_engines.measure.selection import energy_j, memory_doubt, memory_mb, pareto_front


def _number(value, style: str = "{:.2f}") -> str:
    return "-" if value is None else style.format(value)


def _noisy(row: BenchRow) -> str:
    if row.wer_noisy is None:
        return "-"
    spread = f" ± {row.wer_noisy_std:.2f}" if row.wer_noisy_std is not None else ""
    return f"{row.wer_noisy:.2f}{spread} ({len(row.wer_noisy_draws)}× {row.noise})"


def _precision_run(row: BenchRow) -> str:
    """What really ran: the variant, and the layer counts per precision where the backend reports them."""
    counts = {}
    for part in (row.extra.get("build") or {}).values():
        for precision, count in (part.get("layer_precisions") or {}).items():
            counts[precision] = counts.get(precision, 0) + count
    return row.variant + (" (layers " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + ")" if counts else "")


def _window(row: BenchRow, said: dict[str, int]) -> str:
    """How trustworthy the energy window was, and why not where it was not; a reason shared by several rows is
    written once below the table and referred to by its number here."""
    if row.energy_j is None:
        number = said.setdefault(row.energy_note, len(said) + 1)
        return f"not measured ({number})"
    verdict = "reliable" if row.energy_reliable else "UNRELIABLE"
    return f"{verdict}, {row.energy_repeats}× set" + (f"; {row.energy_note}" if row.energy_note else "")


def _memory(row: BenchRow) -> str:
    """What the memory figure is made of, and any doubt about it."""
    basis = "RSS + GPU" if row.gpu_mem_mb is not None else ("RSS" if row.device == "cpu" or row.system_mem_note else "system-wide")
    doubt = memory_doubt(row) or (f"system-wide figure set aside: {row.system_mem_note}" if row.system_mem_note else "")
    return basis + (f"; {doubt}" if doubt else "")


def _table(header: list[str], lines: list[list[str]]) -> str:
    def cell(text) -> str:
        return str(text).replace("|", "\\|")

    return "\n".join(["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
                     + ["| " + " | ".join(cell(text) for text in line) + " |" for line in lines])


def markdown(rows: list[BenchRow], front: list[BenchRow], written: dict[str, figures.Figure], store: Path) -> str:
    devices = sorted({row.device_id for row in rows})
    results = _table(
        ["engine", "precision run", "backend / device", "WER clean %", "WER noisy %", "RTFx", "p50 ms", "memory MB", "energy J",
         "J / audio s"],
        [[row.engine, _precision_run(row), f"{row.backend} / {row.device}", f"{row.wer_clean:.2f}", _noisy(row),
          f"{row.rtfx:.1f}", f"{row.latency_p50_ms:.0f}", f"{memory_mb(row):.0f}", _number(energy_j(row)),
          _number(row.j_per_audio_s, "{:.3f}")] for row in rows],
    )
    said: dict[str, int] = {}
    method = _table(
        ["engine", "meter (sensor averaging)", "rail (GPU rail)", "sample Hz", "baseline W", "energy", "window", "memory", "device",
         "decided at build (clean/noisy WER points)"],
        [[row.engine, f"{row.meter} ({row.sensor_averaging or '-'})", f"{row.rail} ({row.gpu_rail or '-'})",
          _number(row.sample_hz, "{:.0f}"), _number(row.baseline_w),
          "net of idle" if row.energy_net_j is not None else ("gross" if row.energy_j is not None else "none"),
          _window(row, said), _memory(row), row.device_id, build_choices(row)] for row in rows],
    ) + "".join(f"\n\n({number}) {reason}" for reason, number in said.items())
    pareto = _table(["engine", "WER clean %", "energy J", "memory MB"],
                    [[row.engine, f"{row.wer_clean:.2f}", _number(energy_j(row)), f"{memory_mb(row):.0f}"] for row in front])
    images = "\n\n".join(f"### {name}\n\n![{name}]({figure.path.name})" for name, figure in written.items())
    return f"""# ASR engines report

{len(rows)} rows from `{store}`, {len(devices)} device(s): {", ".join(f"`{d}`" for d in devices)}.
Written {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.

WER: jiwer corpus WER after Whisper's EnglishTextNormalizer; noisy is the mean ± standard deviation of the
seeded draws. RTFx: audio s / inference s (front end + model + decoding). Memory: the engine's own process,
peak RSS plus its GPU memory where that can be read (NVML; nvmap on a Jetson, as root); the system-wide
figure, which counts every other process too, stands in for the GPU's share only where it cannot be read and
the figure is clean. Energy: one clean pass over the dataset, from the hardware energy counter where the
source has one, else trapezoids of the sampled power, net of the measured idle baseline where there is one.

## Results

{results}

## How each number was measured

{method}

## Pareto front (not beaten on WER, energy and memory together)

{pareto}

## Figures

{images}
"""


def write_report(rows: list[BenchRow], out_dir: Path, store: Path) -> dict[str, figures.Figure]:
    """report.md and its four figures in `out_dir`; returns the figures with their plotted data."""
    out_dir.mkdir(parents=True, exist_ok=True)
    front = pareto_front(rows)
    written = {
        "WER clean vs noisy (study Fig. 4)": figures.wer_clean_noisy(rows, out_dir / "wer_clean_noisy.png"),
        "Energy per precision (study Fig. 5)": figures.energy_per_precision(rows, out_dir / "energy_per_precision.png"),
        "RTF and memory per precision (study Fig. 7)": figures.speed_and_memory(rows, out_dir / "rtf_memory.png"),
        "WER vs energy (study Fig. 8)": figures.wer_vs_energy(rows, front, out_dir / "wer_vs_energy.png"),
    }
    write_text_atomic(out_dir / "report.md", markdown(rows, front, written, store))
    return written
