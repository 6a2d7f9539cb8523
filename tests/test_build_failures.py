"""A failed build leaves nothing behind and an older engine untouched; isolated builds run elsewhere."""

import json
import os
from pathlib import Path

import pytest

import asr_engines.engines.onnxrt.builder
from asr_engines.engines.backends import make_builder
from asr_engines.engines.build import CalibrationSettings, build_engines
from asr_engines.engines.onnxrt.builder import OnnxRuntimeBuilder


def test_failed_build_leaves_no_file(tiny_onnx, tmp_path, monkeypatch):
    def broken_quantizer(source, target, stream, form, excluded=None):
        target.write_bytes(b"half a model")
        raise RuntimeError("quantizer crashed")

    monkeypatch.setattr(asr_engines.engines.onnxrt.builder, "quantize_int8", broken_quantizer)
    out = tmp_path / "engines"
    builder = make_builder("onnxruntime")
    build_engines(tiny_onnx, out, builder, ["fp32"], progress=False)
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    with pytest.raises(RuntimeError, match="quantizer crashed"):
        build_engines(tiny_onnx, out, builder, ["int8"], CalibrationSettings(count=2), progress=False)
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before  # no int8 file, no staging folder


def test_unknown_precision_and_missing_export_are_refused(tiny_onnx, tmp_path):
    from asr_engines.engines.assets import AssetsError

    with pytest.raises(ValueError, match="unknown precision 'int4'"):
        build_engines(tiny_onnx, tmp_path, make_builder("onnxruntime"), ["int4"], progress=False)
    with pytest.raises(AssetsError, match="no export.json"):
        build_engines(tmp_path, tmp_path, make_builder("onnxruntime"), ["fp32"], progress=False)


def test_the_qdq_file_is_asked_for():
    """On ONNX Runtime int8 is the CPU form alone unless the Q/DQ file for TensorRT is asked for."""
    from asr_engines.variants import Precision, Variant

    assert make_builder("onnxruntime").variants(Precision.INT8) == [Variant.INT8]
    assert make_builder("onnxruntime", qdq=True).variants(Precision.INT8) == [Variant.INT8, Variant.INT8_QDQ]
    assert make_builder("onnxruntime", qdq=True).variants(Precision.FP16) == [Variant.FP16]


class IsolatedBuilder(OnnxRuntimeBuilder):
    """ONNX Runtime's builder asking for fresh processes, as TensorRT's does; it notes where each graph was built."""

    isolate_builds = True

    def build(self, job):
        return {**super().build(job), "built_in_pid": os.getpid()}


def test_isolated_builds_run_in_a_fresh_process(tiny_onnx, tmp_path):
    """Backends that ask for it (TensorRT) build each graph in its own process, so its memory goes back to
    the OS; the engine is the same as one built here."""
    (manifest,) = build_engines(tiny_onnx, tmp_path / "isolated", IsolatedBuilder(), ["fp16"], progress=False)
    (here,) = build_engines(tiny_onnx, tmp_path / "here", make_builder("onnxruntime"), ["fp16"], progress=False)
    built_in = json.loads(manifest.read_text())["build"]["model"]["built_in_pid"]
    assert built_in != os.getpid()
    assert (tmp_path / "isolated" / "tiny-fp16.onnx").read_bytes() == (tmp_path / "here" / "tiny-fp16.onnx").read_bytes()


def test_a_truncated_onnx_is_one_line_and_leaves_no_folder(tiny_onnx, tmp_path):
    import shutil

    from click.testing import CliRunner

    from asr_engines.commands.build import command as main

    broken = tmp_path / "broken"
    shutil.copytree(tiny_onnx, broken)
    data = (broken / "model.onnx").read_bytes()
    (broken / "model.onnx").write_bytes(data[: len(data) // 2])
    result = CliRunner().invoke(main, [str(broken), "--out", str(tmp_path / "out"), "--backend", "onnxruntime"])
    assert result.exit_code == 1 and not (tmp_path / "out").exists()
    assert result.output.strip().endswith("model.onnx: not a readable ONNX file, truncated or corrupt (DecodeError); re-export it")


def test_a_killed_bench_leaves_no_child_holding_an_engine(tiny_engines, tmp_path):
    """SIGKILL to `asr-engines bench` while its fresh process measures an engine: that process goes too."""
    import signal
    import subprocess
    import sys
    import time

    bench = subprocess.Popen([sys.executable, "-m", "asr_engines", "bench", str(tiny_engines / "tiny-fp32.json"), "--meter", "none",
                              "--baseline-s", "0", "--skip-noisy-above", "inf", "--out", str(tmp_path / "out"),
                              "--store", str(tmp_path / "store.sqlite"), "--no-progress"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, workers = time.monotonic() + 60, []
    while time.monotonic() < deadline and not workers:  # the spawned worker, not multiprocessing's resource tracker
        time.sleep(0.1)
        workers = [pid for pid in _children(bench.pid) if b"spawn_main" in _cmdline(pid)]
    (child,) = workers
    time.sleep(1)  # the child is measuring
    bench.send_signal(signal.SIGKILL)
    bench.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and Path(f"/proc/{child}").exists() and "Z" not in _state(child):
        time.sleep(0.1)
    assert not Path(f"/proc/{child}").exists() or "Z" in _state(child)


def _children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0]
    except (OSError, IndexError):
        return "Z"


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_a_build_onto_a_full_disk_is_one_line_and_keeps_what_was_there(tiny_onnx, tmp_path, precision):
    """A disk that fills mid-write (here the kernel's file-size limit, which fails a write as a full disk does: no
    root, no mount): one line naming the folder, exit 1, no staging left, the engine already there untouched."""
    import resource
    import signal
    import subprocess
    import sys

    out = tmp_path / "engines"
    build_engines(tiny_onnx, out, make_builder("onnxruntime"), ["fp32" if precision == "fp16" else "fp16"], progress=False)
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    limit = (tiny_onnx / "model.onnx").stat().st_size // 4

    def small_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails (EFBIG) instead of the process being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = subprocess.run([sys.executable, "-m", "asr_engines", "build", str(tiny_onnx), "--out", str(out),
                             "--backend", "onnxruntime", "--precisions", precision],
                            preexec_fn=small_files, capture_output=True, text=True, timeout=300)
    lines = [line for line in result.stderr.splitlines() if line.strip() and "engines:" not in line]  # not the progress bar
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    assert lines[0].startswith("build: could not write") and f"into {out} (File too large); nothing was published" in lines[0]
    assert "free space there or build into another --out" in lines[0]
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before
