"""The TensorRT runtime's buffers on a real GPU through pycuda: allocation, pinned memory, host->device->host
round trips, reuse across shapes, and our TensorRTEngine running a tiny wav2vec2 on GPU memory. TensorRT
itself is stood in for (no machine here has it). Skipped without pycuda and a CUDA device (always, in CI);
run on a GPU machine with `python -m pytest tests/test_pycuda_buffers.py`."""

import numpy as np
import pytest

cuda = pytest.importorskip("pycuda.driver", reason="pycuda is not installed (it builds only where CUDA is)")


@pytest.fixture(scope="module")
def memory():
    try:
        from runtime.tensorrt_engine import PycudaMemory

        return PycudaMemory()
    except Exception as error:  # no driver or no device: nothing to test here
        pytest.skip(f"no CUDA device: {error}")


class StandInEngine:
    """TensorRT's tensor API for one fp16 input [1, n] (100..16000) and one fp32 output [1, n]."""

    num_io_tensors = 2

    def get_tensor_name(self, index):
        return ("audio", "copy")[index]

    def get_tensor_mode(self, name):
        return "IN" if name == "audio" else "OUT"

    def get_tensor_dtype(self, name):
        return np.float16 if name == "audio" else np.float32

    def get_tensor_shape(self, name):
        return (1, -1)

    def get_tensor_profile_shape(self, name, profile):
        return (1, 100), (1, 8000), (1, 16000)


class StandInContext:
    def __init__(self):
        self.shapes, self.addresses = {}, {}

    def set_input_shape(self, name, shape):
        self.shapes["audio"] = self.shapes["copy"] = tuple(shape)

    def get_tensor_shape(self, name):
        return self.shapes[name]

    def set_tensor_address(self, name, address):
        self.addresses[name] = address


def test_round_trip_and_reuse_on_the_gpu(memory):
    from runtime.tensorrt_engine import IOBuffers

    context = StandInContext()
    buffers = IOBuffers(StandInEngine(), context, memory, "IN", lambda dtype: dtype)
    # pagelocked_empty's arrays keep their allocation as .base (PagelockedHostAllocation; HostAllocation before 2013)
    assert all("HostAllocation" in type(array.base).__name__ for array in buffers._host.values())
    addresses = dict(context.addresses)
    for length in (16000, 3000, 100):
        audio = np.random.default_rng(length).uniform(-1, 1, (1, length))
        buffers.stage_inputs({"audio": audio})
        # the stand-in "engine": widen fp16 -> fp32 by copying back through the host (exercises D2H + H2D)
        half = np.empty(length, np.float16)
        cuda.memcpy_dtoh_async(half, context.addresses["audio"], memory.stream)
        memory.synchronize()
        cuda.memcpy_htod_async(context.addresses["copy"], half.astype(np.float32), memory.stream)
        (copy,) = buffers.fetch_outputs().values()
        assert copy.shape == (1, length)
        assert np.allclose(copy, audio.astype(np.float16).astype(np.float32))
    assert context.addresses == addresses  # the same device buffers, reused for every shape


def test_tensorrt_engine_on_gpu_memory(memory, tiny_onnx, speech):
    """TensorRTEngine with PycudaMemory: inputs cast to the declared fp16 into pinned buffers, copied to the
    device, outputs copied back on the stream, the same allocations for every length; the stand-in plan runs
    the graph with ONNX Runtime on what it copies out of device memory."""
    import onnxruntime

    from engines.profiles import dimension_ranges, graph_profile

    from tensorrt_stand_ins import stand_in_engine

    ranges = dimension_ranges("ctc", "model", tiny_onnx, (1.0, 4.0, 8.0))
    profile = graph_profile(tiny_onnx / "model.onnx", ranges)
    engine, _ = stand_in_engine(tiny_onnx / "model.onnx", profile.shapes, {"input_values": np.float16}, memory=memory)
    reference = onnxruntime.InferenceSession(str(tiny_onnx / "model.onnx"), providers=["CPUExecutionProvider"])
    addresses = dict(engine._context.addresses)
    for seconds in (8, 1, 3.5):
        audio = speech[np.newaxis, : int(seconds * 16000)]
        (logits,) = engine.run({"input_values": audio}).values()
        expected = reference.run(None, {"input_values": audio.astype(np.float16).astype(np.float32)})[0]
        assert logits.shape == expected.shape and np.allclose(logits, expected, atol=1e-4)
    assert engine._context.addresses == addresses
