"""Everything around TensorRT that runs without it: profile, INT8 path, calibration batches and cache,
layer-precision counts, plan compatibility, and the runtime's buffer logic on stand-ins."""

import json
from pathlib import Path

import numpy as np
import pytest

from asr_engines.calibration.stream import CalibrationStream, calibration_stream
from asr_engines.engines.backends import make_builder
from asr_engines.engines.builder import BuilderUnavailable
from asr_engines.engines.profiles import audio_range, dimension_ranges, graph_profile, shape_profile
from asr_engines.engines.trt.rules import (
    PrecisionMissing,
    calibration_batches,
    check_int8_ran,
    choose_int8_mode,
    count_layer_precisions,
    strongly_typed,
    workspace_bytes,
)
from asr_engines.features import CTCFrontEnd
from asr_engines.runtime.backends import load_engine
from asr_engines.runtime.engine import EngineError
from asr_engines.runtime.tensorrt_engine import check_plan_compatibility, plan_mismatches
from asr_engines.variants import Variant


def test_profile_covers_the_dataset(utterances, tiny_onnx):
    import soundfile

    durations = [soundfile.info(str(u.audio_path)).duration for u in utterances]
    ranges = dimension_ranges("ctc", "model", tiny_onnx, durations)
    profile = graph_profile(tiny_onnx / "model.onnx", ranges)
    low, middle, high = profile.shapes["input_values"]
    # up to one 20 s chunk, longer than the longest utterance (16.4 s): longer recordings are read in chunks
    assert low == (1, round(min(durations) * 16000)) and high == (1, 20 * 16000)
    assert middle == (1, round(float(np.median(durations)) * 16000))
    assert profile.as_dict()["input_values"]["max"] == [1, 20 * 16000]
    long_set = dimension_ranges("ctc", "model", tiny_onnx, [*durations, 26.2])
    assert long_set["sequence_length"][2] == 27 * 16000  # a longer utterance in the set: the profile still holds it
    fixed = dimension_ranges("ctc", "model", tiny_onnx, durations, audio_s=(1, 8, 30), max_batch=2)
    assert fixed == {"batch_size": (1, 1, 2), "sequence_length": (16000, 128000, 480000)}
    with pytest.raises(ValueError, match="min <= opt <= max"):
        audio_range(durations, opt_s=40)
    with pytest.raises(ValueError, match="dimension 'frames' with no range"):
        shape_profile([{"name": "x", "shape": ["batch_size", "frames"]}], ranges)


@pytest.mark.parametrize(("version", "mode"),
                         [("8.5.2.2", "implicit"), ("8.6.2", "implicit"), ("10.3.0", "explicit"), ("11.0.0", "explicit")])
def test_int8_path_by_version(version, mode):
    assert choose_int8_mode(version) == mode


def test_int8_path_requests_that_a_version_cannot_do():
    assert choose_int8_mode("10.3.0", "implicit") == "implicit"  # deprecated but present
    with pytest.raises(ValueError, match="removed in 11"):
        choose_int8_mode("11.0.0", "implicit")
    with pytest.raises(ValueError, match="predates"):
        choose_int8_mode("8.5.2", "explicit")
    assert strongly_typed("11.1") and not strongly_typed("10.3.0")


def test_workspace_is_a_capped_share_of_free_memory():
    assert workspace_bytes(6 << 30, 0.5) == 3 << 30
    assert workspace_bytes(60 << 30, 0.5) == 4 << 30
    with pytest.raises(ValueError):
        workspace_bytes(1 << 30, 0)


def test_calibration_batches_are_at_opt_shape(utterances):
    stream = calibration_stream(utterances, CTCFrontEnd(), count=6, noisy_fraction=0.5, length_s=3.0)
    profile = shape_profile([{"name": "input_values", "shape": ["batch_size", "sequence_length"]}],
                            {"batch_size": (1, 1, 4), "sequence_length": audio_range([1.0, 2.0, 9.0])})
    batches = list(calibration_batches(stream, profile))  # opt 2 s: the 3 s samples are cropped
    assert len(batches) == 6 and stream.description["noisy"] == 3
    assert all(b["input_values"].shape == (1, 32000) and b["input_values"].dtype == np.float32 for b in batches)
    assert np.array_equal(batches[0]["input_values"], stream.inputs[0]["input_values"][:, :32000])
    short = CalibrationStream([{"input_values": np.ones((1, 100), np.float64)}])
    (padded,) = calibration_batches(short, profile)
    assert padded["input_values"][0, :100].all() and not padded["input_values"][0, 100:].any()
    with pytest.raises(ValueError, match="has 3 axes; the profile has 2"):
        next(calibration_batches(CalibrationStream([{"input_values": np.ones((1, 1, 100))}]), profile))


INSPECTOR_FIXTURES = Path(__file__).parent / "fixtures" / "inspector"


def inspector(name: str) -> dict:
    return json.loads((INSPECTOR_FIXTURES / name).read_text())


@pytest.mark.parametrize(("fixture", "expected"), [
    # 8.6: one int8 conv; the reformat apart; the first conv fp16 (kept out of int8); the Myelin region fused
    ("tensorrt-8.6-int8.json", {"int8": 1, "fp16": 1, "data movement": 1, "fused": 1}),
    # 10.x: int8 conv and GEMM judged by their inputs and tactics although they output fp16/fp32
    ("tensorrt-10-int8.json", {"int8": 2, "fp16": 2, "fp32": 2, "data movement": 1}),
    # 11: the same plan with Format/Datatype split into DataType and Format
    ("tensorrt-11-int8.json", {"int8": 2, "fp16": 2, "fp32": 2, "data movement": 1}),
    ("tensorrt-10-fp16-named-int8.json", {"fp16": 4, "fp32": 2, "data movement": 1}),
])
def test_layer_precisions_by_input_and_tactic(fixture, expected):
    assert count_layer_precisions(inspector(fixture)) == expected


def test_int8_check_warns_or_fails_only_without_int8_kernels():
    for good in ("tensorrt-8.6-int8.json", "tensorrt-10-int8.json", "tensorrt-11-int8.json"):
        assert check_int8_ran(Variant.INT8, inspector(good), strict=True) == ""
    fake = inspector("tensorrt-10-fp16-named-int8.json")
    assert check_int8_ran(Variant.FP16, fake, strict=True) == ""  # not asked for int8
    with pytest.warns(UserWarning, match="0 of 7 layers run INT8"):
        note = check_int8_ran(Variant.INT8, fake)
    assert note.startswith("warning: 0 of 7 layers run INT8") and "under an int8 name" in note
    with pytest.raises(PrecisionMissing, match="0 of 7 layers run INT8"):
        check_int8_ran(Variant.INT8, fake, strict=True)
    fused_only = {"Layers": [layer for layer in inspector("tensorrt-8.6-int8.json")["Layers"] if "Myelin" in layer["LayerType"]]}
    with pytest.warns(UserWarning, match="fused or undescribed regions hide theirs"):
        assert "check the plan's speed" in check_int8_ran(Variant.INT8, fused_only)


ORIN_NANO_8GB = {"tensorrt": "10.3.0", "gpu": "Orin", "compute_capability": "8.7", "multiprocessors": 8,
                 "gpu_memory_mb": 7620, "l4t": "R36.4.3"}


def test_plans_from_another_board_or_version_are_refused_saying_what_differs(tmp_path):
    check_plan_compatibility(dict(ORIN_NANO_8GB), {**ORIN_NANO_8GB, "gpu_memory_mb": 7600}, tmp_path / "a.plan")  # carve-outs
    orin_nano_4gb = {**ORIN_NANO_8GB, "multiprocessors": 4, "gpu_memory_mb": 3410}
    with pytest.raises(EngineError, match=r"a.plan was built elsewhere \(multiprocessors 8 when built, 4 here; "
                                          r"gpu memory mb 7620 when built, 3410 here\): rebuild it here"):
        check_plan_compatibility(ORIN_NANO_8GB, orin_nano_4gb, tmp_path / "a.plan")
    assert plan_mismatches(ORIN_NANO_8GB, {**ORIN_NANO_8GB, "tensorrt": "10.7.0", "l4t": "R36.5.0"}) == [
        "tensorrt 10.3.0 when built, 10.7.0 here", "l4t R36.4.3 when built, R36.5.0 here"]
    assert plan_mismatches(ORIN_NANO_8GB, {**ORIN_NANO_8GB, "gpu": "NVIDIA H100", "compute_capability": "9.0"}) == [
        "gpu Orin when built, NVIDIA H100 here", "compute capability 8.7 when built, 9.0 here"]
    assert plan_mismatches({"tensorrt": "8.6.2", "gpu": "Orin"}, ORIN_NANO_8GB) == ["tensorrt 8.6.2 when built, 10.3.0 here"]


def test_tensorrt_absent_is_reported_not_crashed(tmp_path):
    with pytest.raises(BuilderUnavailable, match="make install-jetson"):
        make_builder("tensorrt")
    assert make_builder("auto").backend == "onnxruntime"
    (tmp_path / "m.plan").write_bytes(b"plan")
    with pytest.raises(EngineError, match="needs TensorRT and pycuda"):
        load_engine(tmp_path / "m.plan")


def test_tensorrt_engine_runs_a_real_graph_on_stand_ins(tiny_onnx, speech):
    """Our TensorRTEngine (IOBuffers: sizing for the profile's max, casting to the declared fp16, byte copies,
    output shapes, reuse) over a stand-in plan that runs the tiny wav2vec2 with ONNX Runtime."""
    import onnxruntime

    from stand_ins.tensorrt import stand_in_engine

    profile = graph_profile(tiny_onnx / "model.onnx", dimension_ranges("ctc", "model", tiny_onnx, (1.0, 4.0, 8.0), (None, None, 8.0)))
    engine, memory = stand_in_engine(tiny_onnx / "model.onnx", profile.shapes, declared={"input_values": np.float16})
    assert [(i.name, i.dtype) for i in engine.inputs] == [("input_values", "float16")]
    device_buffer = engine._buffers._device["input_values"][0]
    assert memory.store[device_buffer].size == 8 * 16000 * 2  # sized once, for the profile's max, in fp16
    reference = onnxruntime.InferenceSession(str(tiny_onnx / "model.onnx"), providers=["CPUExecutionProvider"])
    allocations = memory.allocations
    for seconds in (8, 1, 3.5):  # largest first, then smaller: the same buffers serve every length
        audio = speech[np.newaxis, : int(seconds * 16000)].astype(np.float64)  # float64 in: cast to the declared fp16
        copied = memory.h2d_bytes
        (logits,) = engine.run({"input_values": audio}).values()
        expected = reference.run(None, {"input_values": audio.astype(np.float16).astype(np.float32)})[0]
        assert logits.shape == expected.shape and np.allclose(logits, expected, atol=1e-4)
        assert memory.h2d_bytes - copied == audio.size * 2  # only this input, as fp16
    assert memory.allocations == allocations and engine._buffers._host["input_values"].size == 8 * 16000
    with pytest.raises(EngineError, match=r"profile takes \(1, 16000\) to \(1, 128000\).*--profile-max-s"):
        engine.run({"input_values": np.zeros((1, 9 * 16000))})
    with pytest.raises(EngineError, match="missing input 'input_values'"):
        engine.run({"audio": np.zeros((1, 16000))})


def test_check_device_compares_a_models_plans_with_onnxruntime_by_wer(tiny_onnx, tmp_path, monkeypatch, capsys):
    """`make check-device CHECK_ONNX=...` logic, with ONNX Runtime standing in for the TensorRT builder: each
    precision built and judged as its own steps."""
    import asr_engines.engines.backends
    from asr_engines.commands.check_device import Checks, _check_model

    onnxruntime_builder = asr_engines.engines.backends.make_builder("onnxruntime", qdq=True)
    monkeypatch.setattr(asr_engines.engines.backends, "make_builder", lambda backend="auto", tensorrt=None, qdq=False: onnxruntime_builder)
    checks = Checks()
    _check_model(checks, tiny_onnx, tmp_path, count=2)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("     ONNX Runtime fp32: ") and "% WER on 2 utterances" in lines[0]
    assert any(line.startswith("PASS tiny-fp32 transcribes like ONNX Runtime (") and "+0.00 points" in line for line in lines)
    passed = [line.split(" (")[0] for line in lines if line.startswith("PASS")]
    assert checks.failed == 0 and len(passed) == 7  # 3 builds; fp32, fp16, int8, int8-qdq judged
    assert passed[0] == f"PASS build {tiny_onnx} fp32 plans"


def test_check_device_runs_in_a_jetson_venv_up_to_tensorrt(tmp_path):
    """What `make install-jetson` installs is enough: with torch, transformers and optimum unimportable (a Jetson
    venv has none), check_device writes its model, runs it with ONNX Runtime, and stops at the missing TensorRT
    with one line: no other failure, no traceback."""
    import subprocess
    import sys

    refuse = """
import runpy, sys
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"torch", "transformers", "optimum"}:
            raise ImportError(f"{name} is not in a Jetson venv")
sys.meta_path.insert(0, Refuse())
from asr_engines.cli import main
main(["check-device"], prog_name="asr-engines")
"""
    result = subprocess.run([sys.executable, "-c", refuse], capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1],
                            timeout=300)
    lines = result.stdout.splitlines()
    assert result.returncode == 1, result.stdout + result.stderr
    assert lines[0].startswith("PASS write a small CTC model and run it with ONNX Runtime (")
    assert lines[1].startswith("FAIL import tensorrt, pycuda, polygraphy (") and "TensorRT not installed" in lines[1]
    assert lines[2] == "nothing more to check without them (on a Jetson: make install-jetson)" and len(lines) == 3
    assert "Traceback" not in result.stderr


def test_check_device_builds_runs_and_judges_each_precision_apart(tmp_path, monkeypatch, capsys):
    """`make check-device`'s steps on its small CTC model, with ONNX Runtime standing in for TensorRT: each
    precision built, run (timed, buffers reused at 4 s) and judged on its own line; int8 against fp32."""
    import asr_engines.engines.backends
    from asr_engines.commands.check_device import Checks, _check_tiny_plans, _tiny_model

    onnxruntime_builder = asr_engines.engines.backends.make_builder("onnxruntime", qdq=True)
    monkeypatch.setattr(asr_engines.engines.backends, "make_builder", lambda backend="auto", tensorrt=None, qdq=False: onnxruntime_builder)
    checks = Checks()
    tiny = _tiny_model(tmp_path)
    _check_tiny_plans(checks, tmp_path, tiny)
    lines = capsys.readouterr().out.splitlines()
    steps = [line.split(" (")[0] for line in lines if line.startswith(("PASS", "FAIL"))]
    assert steps[:9] == [f"PASS {text}" for precision in ("fp32", "fp16", "int8")
                         for text in (f"build the {precision} plan", f"run the {precision} plan", f"{precision} plan's output")]
    int8 = next(line for line in lines if line.startswith("PASS int8 plan's output"))
    assert "against the fp32 plan" in int8 and "% of frames' tokens" in int8
    assert sum("ms per 8 s of audio on cpu" in line for line in lines) == 3
    assert steps[9].startswith("FAIL power meter") and checks.failed == 1  # this machine has no power meter
