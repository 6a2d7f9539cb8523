"""Nothing half-written on disk: files are built in a hidden staging folder, then renamed into place."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

STAGING_PREFIX = ".staging-"


@contextmanager
def staging_dir(out_dir: Path) -> Iterator[Path]:
    """A scratch folder inside `out_dir` (same filesystem, so renames are atomic), always removed after.

    Its name carries this process's id: staging folders of processes that no longer run (a build killed
    with SIGKILL, or by the out-of-memory killer) are removed here, those of builds still running are not."""
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_abandoned_staging(out_dir)
    scratch = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-", dir=out_dir))
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def remove_abandoned_staging(out_dir: Path) -> list[Path]:
    """Remove the staging folders in `out_dir` whose process is gone; return them."""
    removed = []
    for folder in out_dir.glob(f"{STAGING_PREFIX}*"):
        pid = folder.name.removeprefix(STAGING_PREFIX).split("-")[0]
        if folder.is_dir() and not (pid.isdigit() and _running(int(pid))):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def publish(files: list[Path], out_dir: Path) -> list[Path]:
    """Rename staged `files` into `out_dir`, in order (put the manifest last: it marks the engine complete)."""
    published = []
    for staged in files:
        target = out_dir / staged.name
        os.replace(staged, target)
        published.append(target)
    return published


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.chmod(temporary, 0o644)  # mkstemp makes 0600; results are meant to be shared
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def cached_sha256(path: Path) -> str:
    """sha256_file, remembered per file by size and modification time in the user's cache
    (`$XDG_CACHE_HOME/asr-engines/sha256.json`), so checking a 150 MB engine at every load costs a stat.
    Where that cache cannot be written, the file is hashed each time."""
    path = Path(path).resolve()
    stat = path.stat()
    key, stamp = str(path), [stat.st_size, stat.st_mtime_ns]
    cache_file = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "asr-engines" / "sha256.json"
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    entry = cache.get(key)
    if entry and entry[:2] == stamp:
        return entry[2]
    digest = sha256_file(path)
    cache[key] = [*stamp, digest]
    try:
        write_text_atomic(cache_file, json.dumps(cache))
    except OSError:
        pass
    return digest


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
