"""Q/DQ graphs edited node by node: which nodes an INT8 model quantizes, and the same model with some of them
back in float, without calibrating again.

ONNX Runtime's quantizer (QDQ format) feeds each quantized node through DequantizeLinear: activations as
x -> QuantizeLinear -> DequantizeLinear, weights as int8 initializers -> DequantizeLinear. Taking a node back
to float points its inputs at what they were in the float model it was quantized from (same node names, same
activation names) and drops the Q/DQ nodes and initializers nothing reads any more. The scales of the other
nodes do not move, so the result equals quantizing again with that node excluded.
"""

from __future__ import annotations

from collections.abc import Iterable


def quantized_nodes(model, op_types: Iterable[str]) -> list[str]:
    """Names of the `op_types` nodes of a Q/DQ model that read a DequantizeLinear output, in graph order."""
    dequantized = {node.output[0] for node in model.graph.node if node.op_type == "DequantizeLinear"}
    op_types = set(op_types)
    return [node.name for node in model.graph.node if node.op_type in op_types and dequantized & set(node.input)]


def with_float_nodes(quantized, float_model, names: Iterable[str]):
    """A copy of `quantized` in which the nodes `names` run in float, reading what `float_model` fed them."""
    names = set(names)
    return _restored(quantized, float_model, lambda node: node.name in names)


def only_quantized(quantized, float_model, kept: Iterable[str]):
    """A copy of `quantized` in which only the nodes `kept` stay quantized: every other node, the Transposes and
    Reshapes ONNX Runtime wraps in Q/DQ among them, reads what `float_model` fed it."""
    kept = set(kept)
    return _restored(quantized, float_model, lambda node: node.name not in kept)


def with_float_softmax_inputs(quantized) -> int:
    """Point every Softmax that reads DequantizeLinear(QuantizeLinear(x)) at x, in place; return how many.

    ONNX Runtime's quantizer quantizes an attention score MatMul's output for the Softmax after it: 8-bit
    scores lose precision before the exponent, and on a CPU the fused QLinearSoftmax is slower than a float
    Softmax (wav2vec2-base int8, 5 s: 10 ms against 1.3 ms plus a float-output int8 MatMul's 2.8 ms). TensorRT's
    own placement quantizes attention MatMul inputs, never the Softmax input."""
    producers = {output: node for node in quantized.graph.node for output in node.output}
    count = 0
    for node in quantized.graph.node:
        dequantize = producers.get(node.input[0]) if node.op_type == "Softmax" else None
        quantize = producers.get(dequantize.input[0]) if dequantize and dequantize.op_type == "DequantizeLinear" else None
        if quantize is not None and quantize.op_type == "QuantizeLinear":
            node.input[0] = quantize.input[0]
            count += 1
    _drop_unread(quantized)
    return count


def _restored(quantized, float_model, restore) -> object:
    import onnx

    model = onnx.ModelProto()
    model.CopyFrom(quantized)
    float_nodes = {node.name: node for node in float_model.graph.node}
    float_initializers = {init.name: init for init in float_model.graph.initializer}
    present = {init.name for init in model.graph.initializer}
    # The quantizer may name a DequantizeLinear's output after the initializer it replaced (a bias shared by
    # several nodes): a float reader then gets its own copy under another name, not a second definition.
    produced = {name for node in model.graph.node for name in node.output}
    for node in model.graph.node:
        if node.name in float_nodes and restore(node):
            original = float_nodes[node.name]
            del node.input[:]
            for name in original.input:
                if name in float_initializers and name in produced:
                    name = _float_copy(model, float_initializers[name], present)
                elif name in float_initializers and name not in present:
                    model.graph.initializer.append(float_initializers[name])
                    present.add(name)
                node.input.append(name)
    _drop_unread(model)
    return model


def _float_copy(model, initializer, present: set[str]) -> str:
    name = f"{initializer.name}/float"
    if name not in present:
        copy = model.graph.initializer.add()
        copy.CopyFrom(initializer)
        copy.name = name
        present.add(name)
    return name


def _drop_unread(model) -> None:
    """Remove the nodes whose outputs nothing reads (repeatedly: a Q feeds only its DQ), then unread initializers."""
    graph_outputs = {output.name for output in model.graph.output}
    while True:
        read = {name for node in model.graph.node for name in node.input} | graph_outputs
        unread = [node for node in model.graph.node if not any(output in read for output in node.output)]
        if not unread:
            break
        for node in unread:
            model.graph.node.remove(node)
    read = {name for node in model.graph.node for name in node.input}
    for initializer in [init for init in model.graph.initializer if init.name not in read]:
        model.graph.initializer.remove(initializer)
