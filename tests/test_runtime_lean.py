"""Apps import the runtime on a Jetson without the export stack: torch, transformers and optimum must never
be needed to load an engine and transcribe, and the measurement and build libraries must not be pulled in."""

import subprocess
import sys
from pathlib import Path

APP = """
import sys

class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"torch", "transformers", "optimum"}:
            raise ImportError(f"{name}: the runtime must not need it")

sys.meta_path.insert(0, Refuse())
import numpy as np
from asr_engines import load_engine, load_recognizer

recognizer = load_recognizer(sys.argv[1], threads=1)
text = recognizer.transcribe(np.random.default_rng(0).uniform(-0.3, 0.3, 32000).astype(np.float32))
engine = load_engine(sys.argv[2])
logits = engine.run({"input_values": np.zeros((1, 16000), np.float32)})["logits"]
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"onnx", "jiwer", "click", "tqdm", "matplotlib", "polygraphy"})
print(type(text).__name__, logits.shape, heavy)
"""


def test_runtime_transcribes_without_torch_or_transformers(tiny_engines):
    manifest = tiny_engines / "tiny-int8.json"
    result = subprocess.run([sys.executable, "-c", APP, str(manifest), str(tiny_engines / "tiny-fp32.onnx")],
                            capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1], timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[0] == "str (1, 49, 32) []"
