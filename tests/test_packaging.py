"""The package as others install it: every command names the extra it lacks in one line, and the runtime
installs beside an app's own transformers 5 without touching it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUN_WITHOUT = """
import runpy, sys
for name in {hidden!r}:
    sys.modules[name] = None  # as if not installed
sys.argv = [{module!r}, *{arguments!r}]
runpy.run_module({module!r}, run_name="__main__")
"""


def run_without(hidden: list[str], module: str, *arguments: str) -> subprocess.CompletedProcess:
    code = RUN_WITHOUT.format(hidden=hidden, module=module, arguments=list(arguments))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)


@pytest.mark.parametrize(("hidden", "command", "arguments", "needs", "extra"), [
    (["torch"], "export", ["wav2vec2"], "torch", "export"),
    (["onnx", "tqdm"], "engines", ["onnx/x"], "onnx, tqdm", "build"),
    (["tqdm"], "calibration", ["download", "dev-clean"], "tqdm", "build"),
    (["jiwer"], "runtime.bench", ["e.json"], "jiwer", "bench"),
    (["matplotlib"], "measure.report", [], "matplotlib", "report"),
    (["click"], "measure.check_meter", [], "click", "bench"),
    (["onnx"], "check_device", [], "onnx", "build"),
])
def test_a_missing_extra_is_one_line_naming_it(hidden, command, arguments, needs, extra):
    result = run_without(hidden, command, *arguments)
    line = f"python -m {command}: needs {needs}, not installed here: pip install 'asr-engines[{extra}]'"
    assert result.returncode == 1 and result.stderr.strip() == line, result.stderr


def test_the_runtime_names_its_backend_extra(tiny_engines, tmp_path):
    result = run_without(["onnxruntime"], "runtime.transcribe", str(tiny_engines / "tiny-fp32.json"),
                         str(ROOT / "data" / "librispeech-3752-4944" / "3752-4944-0000.flac"))
    assert result.returncode == 1
    assert result.stderr.strip().endswith("needs ONNX Runtime: pip install 'asr-engines[cpu]' (or [gpu]; on a Jetson, NVIDIA's "
                                          "onnxruntime-gpu wheel)")


@pytest.mark.slow
def test_the_wheel_installs_beside_transformers_5_and_the_example_app_runs(tiny_engines, tmp_path):
    """A fresh venv with an app's transformers 5, then our wheel with the base install and [cpu]: transformers
    stays at 5, and examples/app.py transcribes with an engine folder copied somewhere else."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(tmp_path / "dist"), str(ROOT)],
                   check=True, timeout=600)
    (wheel,) = (tmp_path / "dist").glob("asr_engines-*.whl")
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "venv")], check=True)
    pip = [str(tmp_path / "venv" / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "transformers>=5,<6"], check=True, timeout=900)
    subprocess.run([*pip, f"{wheel}[cpu]"], check=True, timeout=900)
    python = str(tmp_path / "venv" / "bin" / "python")
    version = subprocess.run([python, "-c", "import transformers; print(transformers.__version__)"], capture_output=True,
                             text=True, check=True).stdout.strip()
    assert version.startswith("5."), version
    copied = tmp_path / "my-app" / "models"
    copied.mkdir(parents=True)
    for name in ("tiny-int8.json", "tiny-int8.onnx"):
        shutil.copy(tiny_engines / name, copied / name)
    shutil.copy(ROOT / "examples" / "app.py", tmp_path / "my-app" / "app.py")
    audio = ROOT / "data" / "librispeech-3752-4944" / "3752-4944-0000.flac"
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run([python, "app.py", "models/tiny-int8.json", str(audio)], cwd=tmp_path / "my-app", capture_output=True,
                            text=True, timeout=300, env=environment)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("file: ") and len(lines[0]) > len("file: ") and lines[-1].startswith("caption at")
    imported = subprocess.run([python, "-c", "import runtime, sys; print(runtime.__file__)"], capture_output=True, text=True,
                              cwd=tmp_path, env=environment).stdout
    assert str(tmp_path / "venv") in imported  # the installed wheel, not this checkout
