"""Whisper's attentions fused into ONNX Runtime's MultiHeadAttention (com.microsoft), for its engines only.

The exporter writes each attention as some forty small nodes: the shape arithmetic of its reshapes, transposes
into and out of heads, a causal mask built from the inputs' shapes, scalar scales of 1.0 and a NaN guard after
the softmax. On a CPU each node costs a dispatch; a KV-cache decoder step of tiny.en ran 314 of them. One
MultiHeadAttention node does the same arithmetic (docs/results/2026-12-07-fused-attention.md: what it saves, and
that the transcripts stay the same). ONNX Runtime's own transformer optimizer (bart) fuses none of these
attentions as transformers 4.57 exports them, so the pattern is matched here:

    scores = (q3 * s_q -> heads) @ (keys)^T * s_k  [+ mask]   -> Softmax [-> Where(IsNaN, 0, .)]
    output = probabilities @ values -> Transpose -> Reshape   (the [batch, sequence, hidden] attention output)

where keys and values are either the projections of this call (q3, k3, v3: [batch, sequence, hidden]), the
same after a Concat onto the cache (past_key/past_value inputs, present outputs), or [batch, heads, length,
head] inputs (Whisper's precomputed cross-attention cache). A mask is only taken where it is built from the
inputs' shapes alone (Whisper's causal one: `unidirectional`); an attention that matches none of these stays as
exported. TensorRT reads no com.microsoft ops, so its engines keep the exported graph."""

from __future__ import annotations

from pathlib import Path

DOMAIN = "com.microsoft"
TO_HEADS = [0, 2, 1, 3]  # [batch, sequence, heads, head] <-> [batch, heads, sequence, head]


def fuse_attention(source: Path, target: Path, num_heads: int) -> int:
    """Write `source` to `target` with each attention it matches fused; return how many were."""
    import onnx

    model = onnx.load(str(source))
    fused = fuse_attention_model(model, num_heads)
    onnx.save(model, str(target))
    return fused


def fuse_attention_model(model, num_heads: int) -> int:
    """Fuse, in place, each attention of `model` (an onnx.ModelProto) that matches; return how many."""
    from onnx import helper

    nodes = list(model.graph.node)  # one Python object per node: the fusions below name them by identity
    graph = _Graph(model.graph, nodes)
    fusions = [fusion for node in nodes if node.op_type == "Softmax"
               for fusion in [graph.match(node, num_heads)] if fusion is not None]
    if not fusions:
        return 0
    replaced = {id(fusion.replaces): fusion.node for fusion in fusions}
    removed = {id(node) for fusion in fusions for node in fusion.removes}
    nodes = [replaced.get(id(node), node) for node in nodes if id(node) not in removed]
    del model.graph.node[:]
    model.graph.node.extend(_topologically_sorted(_live(nodes, model.graph)))
    if not any(entry.domain == DOMAIN for entry in model.opset_import):
        model.opset_import.append(helper.make_opsetid(DOMAIN, 1))
    return len(fusions)


class _Fusion:
    """The fused node, the node whose output it gives (the attention's last Reshape), the nodes it also stands for
    (the cache's Concats)."""

    def __init__(self, node, replaces, removes: tuple = ()) -> None:
        self.node, self.replaces, self.removes = node, replaces, removes


class _Graph:
    """Who produces and who reads each tensor of a graph, and the matcher over them."""

    def __init__(self, graph, nodes: list) -> None:
        from onnx import numpy_helper

        self.producer = {output: node for node in nodes for output in node.output}
        self.readers: dict[str, list] = {}
        for node in nodes:
            for name in node.input:
                self.readers.setdefault(name, []).append(node)
        self.inputs = {item.name for item in graph.input}
        self.constants = {item.name: numpy_helper.to_array(item) for item in graph.initializer}
        for node in nodes:
            if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
                self.constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)

    def op(self, name: str, op_type: str, perm: list[int] | None = None):
        """The node of `op_type` (a Transpose by `perm`) that produces `name`, else None."""
        node = self.producer.get(name)
        return node if node is not None and _is(node, op_type, perm) else None

    def scalar(self, name: str) -> float | None:
        value = self.constants.get(name)
        return float(value.reshape(-1)[0]) if value is not None and value.size == 1 else None

    def unscaled(self, name: str) -> tuple[str, float]:
        """`name` with a Mul by a scalar constant stripped, and that scalar (1.0 if none)."""
        node = self.op(name, "Mul")
        if node is not None:
            for data, factor in ((node.input[0], node.input[1]), (node.input[1], node.input[0])):
                if self.scalar(factor) is not None:
                    return data, self.scalar(factor)
        return name, 1.0

    def from_heads(self, name: str, perm: list[int]) -> str | None:
        """The [batch, sequence, hidden] tensor that a Reshape into heads and a Transpose by `perm` made `name` from."""
        transpose = self.op(name, "Transpose", perm)
        reshape = self.op(transpose.input[0], "Reshape") if transpose is not None else None
        return reshape.input[0] if reshape is not None else None

    def cache(self, name: str) -> tuple[str | None, str | None, str | None]:
        """A keys/values tensor [batch, heads, length, head] as (this call's [b, s, hidden] projection, the past
        input it is appended to, the 4-D input it is): one or two of them None."""
        concat = self.op(name, "Concat")
        if concat is not None:
            axis = [a.i for a in concat.attribute if a.name == "axis"]
            if len(concat.input) == 2 and axis in ([2], [-2]) and concat.input[0] in self.inputs:
                projection = self.from_heads(concat.input[1], TO_HEADS)
                return (projection, concat.input[0], None) if projection else (None, None, None)
            return None, None, None
        if name in self.inputs:
            return None, None, name
        return self.from_heads(name, TO_HEADS), None, None

    def projected_from(self, name: str) -> str | None:
        """What the projection (MatMul, then perhaps a bias Add) giving `name` reads."""
        node = self.producer.get(name)
        if node is not None and node.op_type == "Add":
            node = next((self.producer[item] for item in node.input if self.op(item, "MatMul") is not None), None)
        return node.input[0] if node is not None and node.op_type == "MatMul" else None

    def shapes_only(self, name: str) -> bool:
        """Whether `name` depends on the graph's inputs through their shapes alone (no values)."""
        seen, pending = set(), [name]
        while pending:
            current = pending.pop()
            if current in seen or current in self.constants:
                continue
            seen.add(current)
            node = self.producer.get(current)
            if node is None:
                return current not in self.inputs
            if node.op_type != "Shape":
                pending.extend(node.input)
        return True

    def match(self, softmax, num_heads: int) -> _Fusion | None:
        from onnx import helper

        # after the softmax: [Where(IsNaN(p), 0, p)] -> MatMul(p, values) -> Transpose -> Reshape
        readers = self.readers.get(softmax.output[0], [])
        probabilities = softmax.output[0]
        guard = next((node for node in readers if node.op_type == "Where" and node.input[2] == probabilities), None)
        if guard is not None and self.op(guard.input[0], "IsNaN") is not None and self.scalar(guard.input[1]) == 0.0:
            probabilities = guard.output[0]
        weighted = [node for node in self.readers.get(probabilities, []) if node.op_type == "MatMul" and node.input[0] == probabilities]
        merged = self.readers.get(weighted[0].output[0], []) if len(weighted) == 1 else []
        if len(merged) != 1 or not _is(merged[0], "Transpose", TO_HEADS):
            return None
        output = [node for node in self.readers.get(merged[0].output[0], []) if node.op_type == "Reshape"]
        if len(output) != 1:
            return None
        # before it: scores (+ a mask built from shapes alone) = MatMul(query heads, keys transposed)
        scores, mask = softmax.input[0], None
        add = self.op(scores, "Add")
        if add is not None:
            products = [name for name in add.input if self.op(name, "MatMul") is not None]
            if len(products) != 1:
                return None
            scores, mask = products[0], next(name for name in add.input if name != products[0])
            if not self.shapes_only(mask):
                return None
        product = self.op(scores, "MatMul")
        if product is None:
            return None
        query_heads, query_scale = self.unscaled(product.input[0])
        query = self.from_heads(query_heads, TO_HEADS)
        if query is None:
            return None
        query, projection_scale = self.unscaled(query)
        keys_transposed, key_scale = self.unscaled(product.input[1])
        key_projection = self.from_heads(keys_transposed, [0, 2, 3, 1])
        if key_projection is not None:  # keys of this call, straight from their projection
            key = (key_projection, None, None)
        elif self.op(keys_transposed, "Transpose", [0, 1, 3, 2]) is not None:
            key = self.cache(self.producer[keys_transposed].input[0])
        else:
            return None
        value = self.cache(weighted[0].input[1])
        if (key[0] is None) != (value[0] is None) or (key[1] is None) != (value[1] is None) or \
                (key[0] is None and (key[2] is None or value[2] is None)):
            return None
        if mask is not None and (key[0] is None or self.projected_from(key[0]) != self.projected_from(query)):
            return None  # a mask from shapes is taken as causal only in a self-attention
        past = [key[1], value[1]] if key[1] else []
        inputs = [query, key[0], value[0], "", "", "", *past] if key[0] else [query, key[2], value[2]]
        outputs = [output[0].output[0]]
        removes: tuple = ()
        if past:  # the cache's Concats are the fused node's present outputs
            outputs += [self.producer[keys_transposed].input[0], weighted[0].input[1]]
            removes = (self.producer[outputs[1]], self.producer[outputs[2]])
        node = helper.make_node("MultiHeadAttention", inputs, outputs, name=f"{output[0].name}/fused_attention",
                                domain=DOMAIN, num_heads=num_heads, unidirectional=int(mask is not None),
                                scale=query_scale * projection_scale * key_scale)
        return _Fusion(node, output[0], removes)


def _is(node, op_type: str, perm: list[int] | None = None) -> bool:
    return node.op_type == op_type and (perm is None or [list(a.ints) for a in node.attribute if a.name == "perm"] == [perm])


def _reads(node) -> set[str]:
    """The names `node` reads, its subgraphs' reads of outer names included."""
    names = set(node.input)
    for attribute in node.attribute:
        for subgraph in [attribute.g] if attribute.HasField("g") else list(attribute.graphs):
            names |= {name for inner in subgraph.node for name in _reads(inner)}
    return names


def _live(nodes: list, graph) -> list:
    """`nodes` without those whose outputs nothing reads. (ONNX Runtime's OnnxModel.prune_graph, tried instead,
    emptied the screened head's If branch that reads no outer name.)"""
    wanted = {item.name for item in graph.output}
    while True:
        read = wanted.union(*(_reads(node) for node in nodes))
        kept = [node for node in nodes if any(name in read for name in node.output)]
        if len(kept) == len(nodes):
            return kept
        nodes = kept


def _topologically_sorted(nodes: list) -> list:
    """`nodes` with each after the producers of what it reads, otherwise in their order. (ONNX Runtime's
    OnnxModel.topological_sort does not count what a subgraph reads: the screened head's If reads outer names.)"""
    import heapq

    produced = {output: index for index, node in enumerate(nodes) for output in node.output}
    waits = [{produced[name] for name in _reads(node) if name in produced} - {index} for index, node in enumerate(nodes)]
    unblocks: dict[int, list[int]] = {}
    for index, sources in enumerate(waits):
        for source in sources:
            unblocks.setdefault(source, []).append(index)
    ready = [index for index, sources in enumerate(waits) if not sources]
    heapq.heapify(ready)
    order = []
    while ready:
        index = heapq.heappop(ready)
        order.append(nodes[index])
        for reader in unblocks.get(index, []):
            waits[reader].discard(index)
            if not waits[reader]:
                heapq.heappush(ready, reader)
    if len(order) != len(nodes):
        raise ValueError("the fused graph has a cycle")
    return order
