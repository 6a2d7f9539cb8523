"""What the pipeline writes next to the code: ignored by git, removed by `make clean`, nothing else touched;
and a staging folder left by a killed build is cleaned by the next build, never one of a build still running."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from asr_engines.files import STAGING_PREFIX, staging_dir

ROOT = Path(__file__).resolve().parents[1]
#: Beside the tiny engines' own files: what Whisper, TensorRT and an interrupted build leave in engines/.
OTHER_OUTPUTS = ["w-fp16.encoder.plan", "w-int8.decoder_with_past.onnx", "w-int8.tokenizer.json", "w-int8-qdq.json",
                 "w-int8.encoder.0123456789abcdef.calibration.cache", "timing.cache", f"{STAGING_PREFIX}4242-abcd/part.onnx"]
KEPT = ["engines/build.py", "engines/__init__.py", "engines/vocabulary_defaults.json", "engines/README.md"]


def built_files(tiny_engines) -> list[str]:
    return sorted(path.name for path in tiny_engines.iterdir()) + OTHER_OUTPUTS


def test_every_output_is_ignored_and_no_source_is(tiny_engines):
    outputs = [f"engines/{name}" for name in built_files(tiny_engines)] + ["onnx/tiny/model.onnx", "results/x/results.json",
                                                                          "reports/report.md", ".cache/random-models/a"]
    checked = subprocess.run(["git", "check-ignore", "--no-index", *outputs, *KEPT], cwd=ROOT, capture_output=True, text=True)
    ignored = set(checked.stdout.split())
    assert ignored == set(outputs)


def test_make_clean_removes_every_output_and_nothing_else(tiny_engines, tmp_path):
    if shutil.which("make") is None:
        pytest.skip("no make here")
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    for name in [f"engines/{name}" for name in built_files(tiny_engines)] + ["onnx/t/model.onnx", "results/r.json",
                                                                            "reports/report.md", ".cache/c"] + KEPT:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    subprocess.run(["make", "-s", "clean"], cwd=tmp_path, check=True)
    left = sorted(str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*") if path.is_file())
    assert left == sorted(["Makefile", *KEPT])


def test_abandoned_staging_is_removed_running_builds_kept(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    abandoned = tmp_path / f"{STAGING_PREFIX}{dead.pid}-x1"
    running = tmp_path / f"{STAGING_PREFIX}{os.getppid()}-x2"
    for folder in (abandoned, running):
        folder.mkdir()
        (folder / "half.plan").write_bytes(b"half")
    with staging_dir(tmp_path) as scratch:
        assert scratch.name.startswith(f"{STAGING_PREFIX}{os.getpid()}-")
    assert not abandoned.exists() and running.is_dir() and not scratch.exists()
