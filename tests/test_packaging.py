"""The package as others install it: one namespace in the wheel, one command whose subcommands name the extra they
lack in one line, the checkout's `make engines` and `python -m runtime.bench` as the README gives them, and the
runtime installed beside an app's own transformers 5 without touching it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from asr_engines.cli import SUBCOMMANDS

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RUN_WITHOUT = """
import sys
for name in {hidden!r}:
    sys.modules[name] = None  # as if not installed
from asr_engines.cli import main
main({arguments!r}, prog_name="asr-engines")
"""
#: Reports, at exit, every file imported under more than one module name.
TWICE = """
import atexit, sys
OURS = {"asr_engines", "export", "calibration", "engines", "runtime", "measure", "benchmarks", "stand_ins"}
def report():
    names = {}
    for name, module in list(sys.modules.items()):
        if getattr(module, "__file__", None) and name.split(".")[0] in OURS:
            names.setdefault(module.__file__, []).append(name)
    sys.stderr.write(f"loaded twice: {sorted(n for n in names.values() if len(n) > 1)}\\n")
atexit.register(report)
"""


def run_without(hidden: list[str], *arguments: str) -> subprocess.CompletedProcess:
    code = RUN_WITHOUT.format(hidden=hidden, arguments=list(arguments))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    dist, source = tmp_path_factory.mktemp("dist"), tmp_path_factory.mktemp("source") / "asr-engines"
    # built from a copy: setuptools leaves build/ beside the sources, and a stale build/lib would reach later wheels
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", ".venv", ".cache", "onnx", "results", "reports", "build",
                                                                "*.egg-info", "__pycache__", "*-fp32*", "*-fp16*", "*-int8*"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--wheel-dir", str(dist),
                    str(source)], check=True, timeout=600)
    (built,) = dist.glob("asr_engines-*.whl")
    return built


def test_the_wheel_installs_one_namespace(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")} == {"asr_engines"}
    for module in ("asr_engines/runtime/recognizer.py", "asr_engines/engines/trt/builder.py", "asr_engines/measure/meters/ina3221.py",
                   "asr_engines/measure/english_spelling.json", "asr_engines/cli.py"):
        assert module in names
    assert not [name for name in names if name.endswith((".plan", ".onnx", ".cache"))]
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "asr-engines = asr_engines.cli:main" in entry_points


@pytest.mark.parametrize(("hidden", "subcommand", "arguments", "needs", "extra"), [
    (["torch"], "export", ["wav2vec2"], "torch", "export"),
    (["onnx", "tqdm"], "build", ["onnx/x"], "onnx, tqdm", "build"),
    (["tqdm"], "calibrate", ["download", "dev-clean"], "tqdm", "build"),
    (["jiwer"], "bench", ["e.json"], "jiwer", "bench"),
    (["matplotlib"], "report", [], "matplotlib", "report"),
    (["jiwer"], "check-meter", [], "jiwer", "bench"),
    (["onnx"], "check-device", [], "onnx", "build"),
])
def test_a_missing_extra_is_one_line_naming_it(hidden, subcommand, arguments, needs, extra):
    result = run_without(hidden, subcommand, *arguments)
    line = f"asr-engines {subcommand}: needs {needs}, not installed here: pip install 'asr-engines[{extra}]'"
    assert result.returncode == 1 and result.stderr.strip() == line, result.stderr


def test_help_lists_every_subcommand_and_each_shows_examples():
    listing = subprocess.run([BIN / "asr-engines", "--help"], capture_output=True, text=True, check=True).stdout
    assert all(f"  {name} " in listing for name in SUBCOMMANDS)
    for name in SUBCOMMANDS:
        text = subprocess.run([BIN / "asr-engines", name, "--help"], capture_output=True, text=True, check=True).stdout
        assert "Examples:" in text and f"asr-engines {name}" in text.split("Examples:")[1], name


def test_help_imports_no_stage():
    code = "import sys; from asr_engines.cli import main\ntry: main(['--help'])\nexcept SystemExit: pass\n" \
           "print(sorted(m for m in sys.modules if m.startswith('asr_engines.') or m in ('numpy', 'onnxruntime')))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip().splitlines()[-1] == "['asr_engines.cli', 'asr_engines.extras']"


def test_the_runtime_names_its_backend_extra(tiny_engines):
    result = run_without(["onnxruntime"], "transcribe", str(tiny_engines / "tiny-fp32.json"),
                         str(ROOT / "data" / "librispeech-3752-4944" / "3752-4944-0000.flac"))
    assert result.returncode == 1
    assert result.stderr.strip().endswith("needs ONNX Runtime: pip install 'asr-engines[cpu]' (or [gpu]; on a Jetson, NVIDIA's "
                                          "onnxruntime-gpu wheel)")


def test_make_engines_and_python_m_runtime_bench_from_the_checkout(tiny_checkpoint, tmp_path):
    """The README's commands, from the repository root: `make engines` (export, then build) and the bench under
    the name `python -m runtime.bench`, which loads no file under two module names."""
    subprocess.run(["make", "engines", f"MODEL={tiny_checkpoint}", f"ONNX_DIR={tmp_path}/onnx", f"ENGINES_DIR={tmp_path}/engines",
                    "PRECISIONS=fp32", f"PYTHON={sys.executable}", f"ASR={BIN / 'asr-engines'}"],
                   cwd=ROOT, check=True, capture_output=True, timeout=600)
    (manifest,) = (tmp_path / "engines").glob("*.json")
    (tmp_path / "hooks").mkdir()
    (tmp_path / "hooks" / "sitecustomize.py").write_text(TWICE)
    environment = {**os.environ, "PYTHONPATH": str(tmp_path / "hooks")}
    result = subprocess.run([sys.executable, "-m", "runtime.bench", str(manifest), "--limit", "2", "--noise", "none", "--meter", "none",
                             "--baseline-s", "0", "--out", str(tmp_path / "results"), "--store", str(tmp_path / "store.db"),
                             "--no-progress"], cwd=ROOT, capture_output=True, text=True, timeout=600, env=environment)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].split()[:2] == ["engine", "precision"] and manifest.stem in result.stdout
    assert "loaded twice: []" in result.stderr
    assert (tmp_path / "results" / "results.json").is_file()


@pytest.mark.slow
def test_the_wheel_installs_beside_transformers_5_and_the_example_app_runs(wheel, tiny_engines, tmp_path):
    """A fresh venv with an app's transformers 5, then our wheel with the base install and [cpu]: transformers
    stays at 5, and examples/app.py transcribes with an engine folder copied somewhere else."""
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
    assert lines[0].startswith("file: ") and len(lines[0]) > len("file: ") and lines[1].startswith("caption at")
    assert lines[-1].startswith("final: ")
    imported = subprocess.run([python, "-c", "import asr_engines.runtime, sys; print(asr_engines.runtime.__file__)"],
                              capture_output=True, text=True, cwd=tmp_path, env=environment).stdout
    assert str(tmp_path / "venv") in imported  # the installed wheel, not this checkout
    help_text = subprocess.run([str(tmp_path / "venv" / "bin" / "asr-engines"), "--help"], capture_output=True, text=True).stdout
    assert "transcribe" in help_text
