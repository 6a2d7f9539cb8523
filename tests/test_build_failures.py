"""A failed build leaves nothing behind and an older engine untouched."""

import pytest

import engines.onnxruntime_build
from engines.build import CalibrationSettings, build_engines
from engines.builder import make_builder


def test_failed_build_leaves_no_file(tiny_onnx, tmp_path, monkeypatch):
    def broken_quantizer(source, target, stream, form):
        target.write_bytes(b"half a model")
        raise RuntimeError("quantizer crashed")

    monkeypatch.setattr(engines.onnxruntime_build, "quantize_int8", broken_quantizer)
    out = tmp_path / "engines"
    builder = make_builder("onnxruntime")
    build_engines(tiny_onnx, out, builder, ["fp32"], progress=False)
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    with pytest.raises(RuntimeError, match="quantizer crashed"):
        build_engines(tiny_onnx, out, builder, ["int8"], CalibrationSettings(count=2), progress=False)
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before  # no int8 file, no staging folder


def test_unknown_precision_and_missing_export_are_refused(tiny_onnx, tmp_path):
    from engines.assets import AssetsError

    with pytest.raises(ValueError, match="unknown precision 'int4'"):
        build_engines(tiny_onnx, tmp_path, make_builder("onnxruntime"), ["int4"], progress=False)
    with pytest.raises(AssetsError, match="no export.json"):
        build_engines(tmp_path, tmp_path, make_builder("onnxruntime"), ["fp32"], progress=False)


def test_isolated_builds_run_in_a_fresh_process(tiny_onnx, tmp_path, monkeypatch):
    """Backends that ask for it (TensorRT) build each engine in its own process; the result is the same."""
    builder = make_builder("onnxruntime")
    monkeypatch.setattr(type(builder), "isolate_builds", True)
    (sidecar,) = build_engines(tiny_onnx, tmp_path, builder, ["fp16"], progress=False)
    assert sidecar.is_file() and (tmp_path / "tiny-fp16.onnx").is_file()
