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
        from asr_engines.runtime.tensorrt_engine import PycudaMemory
    except Exception as error:  # no driver or no device: nothing to test here
        pytest.skip(f"no CUDA device: {error}")

    class CountedGpuMemory(PycudaMemory):
        """PycudaMemory with its copies counted, and the stand-in plans' own reads and writes (the "kernels")."""

        def __init__(self):
            super().__init__()
            self.allocations = self.h2d_bytes = self.d2h_bytes = 0

        def device(self, nbytes):
            self.allocations += 1
            return super().device(nbytes)

        def to_device(self, device, host):
            super().to_device(device, host)
            self.h2d_bytes += host.nbytes

        def to_host(self, host, device):
            super().to_host(host, device)
            self.d2h_bytes += host.nbytes

        def read(self, address, shape, dtype):
            array = np.empty(shape, dtype)
            cuda.memcpy_dtoh(array, address)
            return array

        def write(self, address, array):
            cuda.memcpy_htod(address, np.ascontiguousarray(array))

    try:
        return CountedGpuMemory()
    except Exception as error:
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
    from asr_engines.runtime.tensorrt_engine import IOBuffers

    context = StandInContext()
    buffers = IOBuffers(StandInEngine(), context, memory, "IN", lambda dtype: dtype)
    addresses = None
    for length in (16000, 3000, 100):
        audio = np.random.default_rng(length).uniform(-1, 1, (1, length))
        buffers.bind_outputs(buffers.bind_inputs({"audio": audio}))
        # the stand-in "engine": widen fp16 -> fp32 by copying back through the host (exercises D2H + H2D)
        half = np.empty(length, np.float16)
        cuda.memcpy_dtoh_async(half, context.addresses["audio"], memory.stream)
        memory.synchronize()
        cuda.memcpy_htod_async(context.addresses["copy"], half.astype(np.float32), memory.stream)
        host, device = buffers.fetch(["copy"])
        assert host["copy"].shape == device["copy"].shape == (1, length)
        assert np.allclose(host["copy"], audio.astype(np.float16).astype(np.float32))
        addresses = addresses or dict(context.addresses)
        assert context.addresses == addresses  # the same device buffers, reused for every shape
    # pagelocked_empty's arrays keep their allocation as .base (PagelockedHostAllocation; HostAllocation before 2013)
    assert set(buffers._host) == {"audio", "copy"}
    assert all("HostAllocation" in type(array.base).__name__ for array in buffers._host.values())


def test_tensorrt_engine_on_gpu_memory(memory, tiny_onnx, speech):
    """TensorRTEngine with PycudaMemory: inputs cast to the declared fp16 into pinned buffers, copied to the
    device, outputs copied back on the stream; device buffers allocated once, when the engine is made, at the
    profile's largest shapes, and the same ones bound for every length; the stand-in plan runs the graph with
    ONNX Runtime on what it copies out of device memory."""
    import onnxruntime

    from asr_engines.engines.profiles import dimension_ranges, graph_profile
    from stand_ins.tensorrt import stand_in_engine

    ranges = dimension_ranges("ctc", "model", tiny_onnx, (1.0, 4.0, 8.0), (None, None, 8.0))
    profile = graph_profile(tiny_onnx / "model.onnx", ranges)
    allocations = memory.allocations
    engine, _ = stand_in_engine(tiny_onnx / "model.onnx", profile.shapes, {"input_values": np.float16}, memory=memory)
    assert memory.allocations == allocations + 2  # one input, one output, both at the largest profile shape
    assert engine._buffers._nbytes["input_values"] == profile.shapes["input_values"][2][1] * 2  # fp16 samples
    reference = onnxruntime.InferenceSession(str(tiny_onnx / "model.onnx"), providers=["CPUExecutionProvider"])
    bound = []
    for seconds in (8, 1, 3.5):
        audio = speech[np.newaxis, : int(seconds * 16000)]
        (logits,) = engine.run({"input_values": audio}).values()
        expected = reference.run(None, {"input_values": audio.astype(np.float16).astype(np.float32)})[0]
        assert logits.shape == expected.shape and np.allclose(logits, expected, atol=1e-4)
        bound.append(dict(engine._context.addresses))
    assert bound[0] == bound[1] == bound[2] and len(bound[0]) == 2  # the same device buffers for every length
    assert memory.allocations == allocations + 2  # none allocated while running


def test_whisper_keeps_its_cache_on_the_gpu(memory, tiny_whisper_onnx, tiny_whisper_engines, utterances):
    """Whisper's three graphs through TensorRTEngine on real GPU memory (stand-in plans of a two-layer random
    Whisper with tiny.en's tokenizer, so it travels to any GPU machine): the same tokens as the ONNX Runtime
    engine; the encoder's output and the KV cache bound by device address from graph to graph; only token ids in
    and, with the greedy head, a token id and its log-probability out."""
    import json

    from asr_engines import load_recognizer
    from asr_engines.manifest import load_manifest
    from stand_ins.tensorrt import bytes_per_token, stand_in_whisper

    manifest = tiny_whisper_engines / "tiny-whisper-fp32.json"
    audio = utterances[0].load()
    on_gpu, _, log = stand_in_whisper(tiny_whisper_onnx, load_manifest(manifest), memory=memory)
    with load_recognizer(manifest, threads=2, trim_margin_s=None) as reference:
        assert on_gpu.generate(audio) == reference.generate(audio)
    h2d, d2h = bytes_per_token(log)
    print(json.dumps({"h2d_bytes_per_token": h2d, "d2h_bytes_per_token": d2h}))
    assert log["encoder"]["d2h"] == 0 and h2d <= 64 and d2h <= 64
