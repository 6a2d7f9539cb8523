"""What an ONNX file takes and gives: input and output names, dtypes and shapes, read without its weights."""

from __future__ import annotations

from pathlib import Path


def onnx_io(path: Path) -> dict:
    """Input and output names, dtypes and shapes (symbolic dims as names) of an ONNX file."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph

    def describe(values) -> list[dict]:
        return [
            {
                "name": value.name,
                "dtype": onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type).name,
                "shape": [dim.dim_param or dim.dim_value for dim in value.type.tensor_type.shape.dim],
            }
            for value in values
        ]

    return {"inputs": describe(graph.input), "outputs": describe(graph.output)}
