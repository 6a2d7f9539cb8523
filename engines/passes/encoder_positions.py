"""Whisper's encoder made to take fewer than 3000 log-mel frames, for ONNX Runtime engines.

The exported encoder adds a fixed table of 1500 positional embeddings to its convolutions' output, so it
takes only full 30 s windows, mostly padding for short utterances. Slicing that table to the length the
convolutions give (Shape -> Slice) lets the runtime feed the frames the audio covers plus a margin
(`WhisperRecognizer(trim_margin_s=...)`): the same arithmetic on a full window, less of it on a short one.
TensorRT plans keep the fixed window: their profile pins it, and a dynamic one would cost tactics."""

from __future__ import annotations

from pathlib import Path

POSITIONS = 1500  # positional embeddings of Whisper's encoder: 3000 frames after its stride-2 convolution


class EncoderLayoutError(ValueError):
    """The graph has no single Add of a [1500, d] positional table, so it cannot be sliced safely."""


def slice_positions(source: Path, target: Path) -> None:
    """Write `source` (a Whisper encoder ONNX) to `target` with its positional table sliced to the input's
    length and the frame dimensions of its input and output made symbolic."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    tables = {item.name for item in graph.initializer if len(item.dims) == 2 and item.dims[0] == POSITIONS}
    adds = [node for node in graph.node if node.op_type == "Add" and tables.intersection(node.input)]
    if len(adds) != 1:
        raise EncoderLayoutError(f"{source}: expected one Add of a [{POSITIONS}, d] positional table, found {len(adds)}")
    (add,) = adds
    table = next(name for name in add.input if name in tables)
    hidden = next(name for name in add.input if name != table)
    graph.initializer.append(numpy_helper.from_array(np.array([0], np.int64), "positions/start"))
    sliced = [
        helper.make_node("Shape", [hidden], ["positions/length"], name="positions/Shape", start=1, end=2),
        helper.make_node("Slice", [table, "positions/start", "positions/length", "positions/start"], ["positions/sliced"],
                         name="positions/Slice"),
    ]
    at = list(graph.node).index(add)
    for offset, node in enumerate(sliced):
        graph.node.insert(at + offset, node)
    add.input[list(add.input).index(table)] = "positions/sliced"
    _symbolic(graph.input[0], 2, "encoder_frames")
    _symbolic(graph.output[0], 1, "encoder_positions")
    del graph.value_info[:]  # shapes inferred for 3000 frames no longer hold
    onnx.save(model, str(target))


def _symbolic(value, axis: int, name: str) -> None:
    dim = value.type.tensor_type.shape.dim[axis]
    dim.ClearField("dim_value")
    dim.dim_param = name
