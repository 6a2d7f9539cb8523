"""`share_thread_pool` (runtime/onnxruntime_engine.py): every ONNX Runtime engine of the process on one thread pool,
Whisper's three graphs taking turns on it; the same tokens as sessions with pools of their own. Each case runs in
a process of its own: the pool is process-wide and made once."""

import json
import os
import subprocess
import sys
from pathlib import Path

from asr_engines.runtime.onnxruntime_engine import OWN_POOLS_VARIABLE

SCRIPT = """
import json, sys
import numpy as np
from asr_engines import EngineError, load_recognizer, share_thread_pool

mode = sys.argv[2]
if mode == "made-elsewhere":
    import onnxruntime
    onnxruntime.set_global_thread_pool_sizes(1, 1)
if mode != "own-pools":
    share_thread_pool(2)
    share_thread_pool(2)  # the same size again: harmless

def graphs(recognizer):
    return [engine.shares_pool for engine in (recognizer.encoder, recognizer.decoder, recognizer.decoder_with_past)]

first, second = load_recognizer(sys.argv[1], threads=2), load_recognizer(sys.argv[1], threads=1)
try:
    share_thread_pool(3)
    resized = "resized"
except EngineError as error:
    resized = str(error)
audio = np.random.default_rng(0).uniform(-0.3, 0.3, 48000).astype(np.float32)
print(json.dumps({"first": graphs(first), "second": graphs(second), "tokens": first.generate(audio), "resized": resized}))
"""


def _run(manifest: Path, mode: str, own_pools: str = "") -> dict:
    env = {**os.environ, OWN_POOLS_VARIABLE: own_pools}  # conftest keeps the suite's own process on per-session pools
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(manifest), mode], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[1], timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_one_pool_for_the_process_gives_the_same_tokens(tiny_whisper_engines):
    manifest = next(tiny_whisper_engines.glob("*-fp32.json"))
    shared, own, elsewhere = (_run(manifest, mode) for mode in ("shared", "own-pools", "made-elsewhere"))
    switched_off = _run(manifest, "shared", own_pools="1")
    assert shared["first"] == shared["second"] == [True, True, True]  # threads=1 too: the pool as made
    assert own["first"] == own["second"] == [False, False, False]
    assert elsewhere["first"] == [True, True, True]  # a pool made by other code: ours must run on it
    assert switched_off["first"] == [False, False, False] and switched_off["resized"] == "resized"
    assert len(shared["tokens"]) > 0
    assert shared["tokens"] == own["tokens"] == elsewhere["tokens"] == switched_off["tokens"]
    assert "already shares one ONNX Runtime pool of 2 threads" in shared["resized"]
    assert own["resized"] == "resized"  # asking before any pool is made is allowed
