"""The TensorRT runtime's buffers on a real GPU through pycuda: allocation, pinned memory, host->device->host
round trips, reuse across shapes. TensorRT itself is stood in for (no machine here has it): the stand-in
"executes" by a device-to-device copy. Skipped without pycuda and a CUDA device (always, in CI); run on a
GPU machine with `python -m pytest tests/test_pycuda_buffers.py`."""

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
