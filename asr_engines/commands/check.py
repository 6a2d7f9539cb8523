"""`asr-engines check ENGINE...`: read every file of each engine again and compare it with its manifest's sha256.

Loading an engine checks its files too, but remembers each file's hash by size and modification time so a load costs
a stat; a file damaged in place with both kept (a bad flash block, a tool that restores times) passes that check.
This one trusts nothing it remembered (docs/manifest.md)."""

from __future__ import annotations

import sys
import time

import click

from asr_engines.manifest import ManifestError, load_manifest

EXAMPLES = """Examples:

\b
  asr-engines check engines/whisper-tiny.en-int8.json
  asr-engines check engines/*.json
"""


@click.command(epilog=EXAMPLES)
@click.argument("engines", nargs=-1, required=True)
def command(engines: tuple[str, ...]) -> None:
    """Re-hash every file each ENGINE (an engine file or its .json manifest) loads; one line per engine, exit 1 if any
    is missing, changed or unreadable."""
    failed = False
    for engine in engines:
        started = time.perf_counter()
        try:
            manifest = load_manifest(engine)
            checked = manifest.verify_files(rehash=True)
        except (ManifestError, OSError) as error:
            click.echo(f"check: {error}", err=True)
            failed = True
            continue
        count = len(manifest.files_sha256)
        click.echo(f"ok {manifest.folder / manifest.engine}.json: {count} file{'s' * (count != 1)}, "
                   f"{checked / 1e6:.1f} MB re-hashed in {time.perf_counter() - started:.1f} s")
    sys.exit(1 if failed else 0)
