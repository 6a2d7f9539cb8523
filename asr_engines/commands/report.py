"""`asr-engines report`: the study's figures and tables from the results store, and the pick under a budget."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from asr_engines.measure.report import write_report
from asr_engines.measure.selection import energy_j, filter_rows, latest, memory_mb, pick
from asr_engines.measure.store import DEFAULT_STORE, StoreError, load_rows

EXAMPLES = """Examples:

\b
  asr-engines report --out reports
  asr-engines report --pick --max-wer 10 --max-memory-mb 1500 --noisy
"""


@click.command(epilog=EXAMPLES)
@click.option("--store", default=str(DEFAULT_STORE), show_default=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--where", multiple=True, help="Filter: field=value, field!=value, field<value, field>value, field~text (repeatable).")
@click.option("--all-runs", is_flag=True, help="Every stored row, not only the latest per device, engine and noise.")
@click.option("--out", "out_dir", default="reports", show_default=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--pick", "do_pick", is_flag=True, help="Name the engine that fits the budget with the least energy.")
@click.option("--max-wer", type=float, help="With --pick: WER budget in %.")
@click.option("--max-memory-mb", type=float, help="With --pick: memory budget in MB.")
@click.option("--noisy", is_flag=True, help="With --pick: judge WER on the noisy condition.")
def command(store: Path, where: tuple[str, ...], all_runs: bool, out_dir: Path, do_pick: bool,
         max_wer: float | None, max_memory_mb: float | None, noisy: bool) -> None:
    """Write OUT/report.md with the study's figures from the bench results store, or --pick an engine."""
    try:
        rows = filter_rows(load_rows(store), list(where))
    except (StoreError, ValueError) as error:
        sys.exit(f"report: {error}")
    rows = rows if all_runs else latest(rows)
    if not rows:
        sys.exit("report: no rows match")
    if do_pick:
        choice = pick(rows, max_wer, max_memory_mb, noisy)
        if choice.chosen is None:
            click.echo("no engine fits the budget")
        else:
            row = choice.chosen
            energy = f"{energy_j(row):.2f} J per pass" if energy_j(row) is not None else f"RTFx {row.rtfx:.1f}, energy not measured"
            click.echo(f"pick: {row.engine} ({row.backend}, {row.precision}) — {energy}, "
                       f"WER {row.wer_noisy if noisy else row.wer_clean:.2f} %, memory {memory_mb(row):.0f} MB, on {row.device_id}")
            click.echo(f"chosen on: {choice.basis}")
        for engine, reason in choice.reasons.items():
            click.echo(f"  {engine}: {reason}")
        sys.exit(0 if choice.chosen else 1)
    write_report(rows, out_dir, store)
    click.echo(f"wrote {out_dir / 'report.md'} ({len(rows)} rows)")

