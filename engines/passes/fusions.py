"""Graph fusions on a quantized graph, for ONNX Runtime's CPU int8 form only (TensorRT fuses on its own, and
its ONNX parser reads no com.microsoft ops, so its Q/DQ form keeps the standard ones).

GELU: the exporter writes erf-GELU as Div, Erf, Add, Mul, Mul, which ONNX Runtime fuses into one Gelu at
load, unless the chain reads a DequantizeLinear (the output of a quantized Conv without bias, as wav2vec2's
feature encoder has): at load ONNX Runtime gives each consumer of a DequantizeLinear its own copy, the
chain's Div and Mul then read two tensors and the fusion no longer matches. wav2vec2-base int8 then ran four
unfused chains and dequantized each of those conv outputs twice. On 5 s of audio, three alternating pairs of
15 runs, each graph in its own process: fastest run 101.5-105.6 ms unfused, 89.6-94.5 ms with those chains
fused in the file (medians 111-115 against 97-104, a burst of other work spoiled one). Done after quantization,
so the calibration and every other node stay as they were: Whisper's chains read a bias Add or a float
Conv, and its int8 graphs come out byte for byte the same."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnx


def fuse_dequantized_gelu(model: onnx.ModelProto) -> int:
    """Fuse, in place, each erf-GELU chain that reads a DequantizeLinear into one com.microsoft Gelu (the same
    erf formula); return how many."""
    from onnxruntime.transformers.fusion_gelu import FusionGelu
    from onnxruntime.transformers.onnx_model import OnnxModel

    class DequantizedGelu(FusionGelu):
        def fuse(self, erf_node, input_name_to_nodes: dict, output_name_to_node: dict) -> None:
            divide = self.model.match_parent(erf_node, "Div", 0, output_name_to_node)
            root = output_name_to_node.get(divide.input[0]) if divide is not None else None
            if root is not None and root.op_type == "DequantizeLinear":
                super().fuse(erf_node, input_name_to_nodes, output_name_to_node)

    graph = OnnxModel(model)
    before = sum(node.op_type == "Gelu" for node in graph.nodes())
    DequantizedGelu(graph).apply()
    fused = sum(node.op_type == "Gelu" for node in graph.nodes()) - before
    if fused:
        graph.topological_sort()  # fused nodes are appended at the end of the graph
    return fused
