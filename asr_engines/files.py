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


class OutputClaimError(OSError):
    """An output folder that this run cannot have: not writable, another run's, or holding another run's results."""


@contextmanager
def claimed_output(out_dir: Path, kept: str) -> Iterator[None]:
    """Hold `out_dir` for this process while the block runs: refused (OutputClaimError, one line) before any work
    if it cannot be written, if another live process holds it, or if it already holds `kept` from an earlier run
    (a second run would silently replace it). A holder killed without cleaning up is taken over. A folder made
    here and left empty is removed."""
    lock, created = out_dir / ".claimed-by", not out_dir.exists()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        if (out_dir / kept).exists():
            raise OutputClaimError(f"{out_dir} already holds {kept} from another run; choose another --out or remove it")
        for _ in range(2):
            try:
                handle = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                break
            except FileExistsError:
                holder = lock.read_text().strip()
                if holder.isdigit() and _running(int(holder)):
                    raise OutputClaimError(f"{out_dir} is being written by another run (pid {holder}); choose another --out") from None
                lock.unlink(missing_ok=True)
        else:
            raise OutputClaimError(f"{out_dir}: could not claim it")
        os.write(handle, f"{os.getpid()}\n".encode())
        os.close(handle)
    except OutputClaimError:
        raise
    except OSError as error:
        raise OutputClaimError(f"cannot write to {out_dir}: {error.strerror or error}") from None
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)
        if created and not any(out_dir.iterdir()):  # nothing was written: leave nothing behind
            out_dir.rmdir()


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


def cached_sha256(path: Path, rehash: bool = False) -> str:
    """sha256_file, remembered per file by size and modification time in the user's cache
    (`$XDG_CACHE_HOME/asr-engines/sha256.json`), so checking a 150 MB engine at every load costs a stat.
    Where that cache cannot be written, the file is hashed each time; `rehash` hashes it anyway (a file changed in
    place with its size and time kept) and remembers the new hash."""
    path = Path(path).resolve()
    stat = path.stat()
    key, stamp = str(path), [stat.st_size, stat.st_mtime_ns]
    cache_file = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "asr-engines" / "sha256.json"
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    cache = cache if isinstance(cache, dict) else {}  # a cache damaged into other JSON is rebuilt, never fatal
    entry = cache.get(key)
    if not rehash and isinstance(entry, list) and len(entry) == 3 and entry[:2] == stamp:
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
