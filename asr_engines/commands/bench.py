"""`asr-engines bench ENGINE...` (also `python -m runtime.bench`): WER (clean and noisy), speed, memory and energy
per engine.

Each engine is measured alone in a fresh process, after an idle baseline of the power meter. Rows are
written to OUT/results.json and OUT/results.csv after every engine, so an interrupted run keeps them.
"""

from __future__ import annotations

import json
import sys
import uuid
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import click

from asr_engines.audio import AudioError
from asr_engines.calibration.datasets import DEFAULT_DATASET, DatasetError, check_dataset, load_dataset
from asr_engines.calibration.noise import NOISE_HELP, NoiseSpecError, parse_noise
from asr_engines.files import OutputClaimError, claimed_output
from asr_engines.manifest import ManifestError, load_manifest, manifest_path_for
from asr_engines.measure.bench import format_table, measure_baseline
from asr_engines.measure.fingerprint import device_fingerprint
from asr_engines.measure.measurement import BenchSettings, measure_engine
from asr_engines.measure.memory import judge_system_memory, system_used_mb
from asr_engines.measure.meters import METERS
from asr_engines.measure.results import BenchRow, write_results
from asr_engines.measure.store import DEFAULT_STORE, StoreError, append_rows
from asr_engines.measure.wer import UNJUDGEABLE_WER_PCT
from asr_engines.processes import in_fresh_process
from asr_engines.runtime.whisper import PRECISION_DEFAULT, parse_trim_margin

EXAMPLES = """Examples:

\b
  asr-engines bench engines/wav2vec2-*.json
  asr-engines bench engines/whisper-tiny.en-int8.json --limit 10 --noise-draws 1 --meter none
"""


@click.command(epilog=EXAMPLES)
@click.argument("engine_paths", metavar="ENGINE...", nargs=-1, required=True)
@click.option("--dataset", default=str(DEFAULT_DATASET), show_default=True,
              help="LibriSpeech-layout folder (*.trans.txt) or JSONL/CSV manifest (audio, text); long recordings are rows too.")
@click.option("--noise", default="study", show_default=True, help=f"Noisy condition: {NOISE_HELP} | none.")
@click.option("--noise-draws", default=3, show_default=True, type=click.IntRange(min=1),
              help="Seeded noise draws; WER is reported as mean and spread.")
@click.option("--skip-noisy-above", default=UNJUDGEABLE_WER_PCT, show_default=True, type=float, metavar="PCT",
              help="Skip the noisy passes of an engine whose clean WER reaches PCT %: a model that does not transcribe "
                   "(random weights) says nothing more on noise. inf: always run them.")
@click.option("--seed", default=0, show_default=True)
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N utterances.")
@click.option("--warmup", default=2, show_default=True, type=click.IntRange(min=0), help="Utterances transcribed before timing starts.")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for the backend [default: the backend's choice].")
@click.option("--trim-margin", default=PRECISION_DEFAULT, show_default=True, metavar="SECONDS|off|default",
              help="Whisper on ONNX Runtime: encoder on the audio plus SECONDS instead of a 30 s window; off: the whole "
                   "window; default: the margin the engine's build measured and kept (asr-engines report shows it; "
                   "engines built before that: by the encoder's precision, docs/results/2026-12-05-trim-decision.md).")
@click.option("--meter", default="auto", show_default=True, type=click.Choice(METERS), help="Power source.")
@click.option("--meter-root", default="/", show_default=True, help="Stands in for / when reading sysfs (tests).")
@click.option("--sample-hz", type=click.FloatRange(min=0, min_open=True), help="Power sampling rate [default: the meter's].")
@click.option("--baseline-s", default=5.0, show_default=True, type=click.FloatRange(min=0),
              help="Idle seconds measured before the engines.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Results folder [default: results/<date-time>].")
@click.option("--store", default=str(DEFAULT_STORE), show_default=True, type=click.Path(dir_okay=False, path_type=Path),
              help="SQLite results store every run appends to (asr-engines report reads it).")
@click.option("--progress/--no-progress", default=True, show_default=True)
def command(engine_paths: tuple[str, ...], dataset: str, noise: str, noise_draws: int, skip_noisy_above: float, seed: int,
            limit: int | None, warmup: int, threads: int | None, trim_margin: str, meter: str, meter_root: str,
            sample_hz: float | None, baseline_s: float, out_dir: Path | None, store: Path, progress: bool) -> None:
    """Measure each ENGINE (an engine file or its .json manifest; globs like engines/*.onnx work).

    Columns: wer_clean / wer_noisy (%, Whisper's English normaliser + jiwer corpus WER; noisy is the mean of
    --noise-draws draws), rtfx (audio s / inference s: features + model + decoding), latency_p50/p90/p99_ms per
    utterance, load_s (engine load, kept out of rtfx), peak_rss_mb and gpu_mem_mb (this engine's process),
    system_mem_mb (system-wide, above idle: other processes included), energy_j (one clean pass, gross) and
    energy_net_j (minus the idle baseline), j_per_audio_s. Bad input (engines whose files are not their
    manifest's, unreadable or non-finite audio) stops the run before anything is measured or stored.
    """
    try:
        manifests = list(dict.fromkeys(manifest_path_for(path) for path in engine_paths))
        for manifest in manifests:
            load_manifest(manifest).verify_files()
        utterances = load_dataset(dataset)[:limit]
        check_dataset(utterances)  # a corrupt or empty file: one line now, not one failure per engine later
        noise_spec = None if noise == "none" else parse_noise(noise)
        trim_margin_s = parse_trim_margin(trim_margin)
    except (ManifestError, DatasetError, NoiseSpecError, AudioError, ValueError) as error:
        sys.exit(f"bench: {error}")
    out_dir = out_dir or Path("results") / datetime.now().strftime("%Y%m%d-%H%M%S")
    settings = BenchSettings(dataset=dataset, noise=noise_spec, noise_draws=noise_draws, skip_noisy_above=skip_noisy_above,
                             seed=seed, limit=limit, warmup=warmup, threads=threads, trim_margin_s=trim_margin_s, meter=meter,
                             meter_root=meter_root, sample_hz=sample_hz, progress=progress)
    rows, failures, unstored, unwritten = [], [], [], []
    try:
        with claimed_output(out_dir, "results.json"):  # checked before anything is measured
            try:
                baseline_w, meter_name = measure_baseline(meter, meter_root, sample_hz, baseline_s)
            except OSError as error:
                sys.exit(f"bench: meter {meter!r}: {error}")
            energy = f", idle baseline {baseline_w:.2f} W" if baseline_w is not None else ", energy unavailable"
            click.echo(f"meter: {meter_name}{energy}", err=True)
            fingerprint = device_fingerprint()
            run_id = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
            for manifest in manifests:
                idle_before = system_used_mb()
                try:
                    # A fresh process per engine: its load time and memory peak are its own.
                    row = in_fresh_process(measure_engine, str(manifest), settings, baseline_w, idle_before)
                except KeyboardInterrupt:
                    click.echo(f"bench: interrupted; {len(rows)} finished rows kept in {out_dir}", err=True)
                    sys.exit(130)
                except Exception as error:  # one broken engine must not lose the others' rows
                    failures.append(f"{manifest}: {type(error).__name__}: {error}")
                    click.echo(f"bench: {failures[-1]}", err=True)
                    continue
                judge_system_memory(row, idle_before, system_used_mb())
                row.run_id, row.device_id, row.dataset = run_id, fingerprint["id"], dataset
                row.started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
                row.extra["fingerprint"] = fingerprint
                rows.append(row)
                keep(row, rows, out_dir, store, unwritten, unstored)
    except OutputClaimError as error:  # only on entering: the block's own failures are caught per engine
        sys.exit(f"bench: {error}")
    if rows:
        click.echo(format_table(rows))
    results = f"{out_dir / 'results.json'}, {out_dir / 'results.csv'}"
    if unstored:
        click.echo(f"bench: NOT stored in {store}: {', '.join(unstored)} (see above); the rows are in {results}", err=True)
    if unwritten:
        click.echo(f"bench: NOT written to {out_dir}: {', '.join(unwritten)} (see above); the rows are in {store}", err=True)
    if rows and not unstored and not unwritten:
        click.echo(f"results: {results}; appended to {store}", err=True)
    sys.exit(1 if failures or unstored or unwritten else 0)


def keep(row: BenchRow, rows: list[BenchRow], out_dir: Path, store: Path, unwritten: list[str], unstored: list[str]) -> None:
    """Write the rows so far to `out_dir` and append `row` to the store; a failure of one is said (the other keeps
    the row); a failure of both prints the row itself, so a measurement is never lost."""
    try:
        write_results(rows, out_dir)
    except OSError as error:
        unwritten.append(row.engine)
        click.echo(f"bench: cannot write {out_dir / 'results.json'}: {error.strerror or error}", err=True)
    try:
        append_rows([row], store)
    except StoreError as error:
        unstored.append(row.engine)
        click.echo(f"bench: {error}", err=True)
    if row.engine in unwritten and row.engine in unstored:
        click.echo(json.dumps(asdict(row), default=str))

