"""Whisper's KV-cache decoder given a screened greedy head, for fp32 graphs on a CPU: the same tokens, a fraction of
the memory traffic.

Each step of the fp32 decoder reads the 51,864 x 384 vocabulary projection (80 MB of float32) to choose one token:
on a CPU that read is bandwidth-bound: 38.7 % of tiny.en's decoder kernel time (docs/results/2026-12-06-screened-head.md).
The screened head reads a 4-bit copy of it (ONNX Runtime's MatMulNBits: one scale per 32 weights, 12 MB) to rank
every token, keeps the `candidates` best, and computes their logits exactly, in float32, from the tied embedding
rows the decoder already holds. The suppressed tokens are masked before the ranking; the greedy choice is made
among the candidates' exact logits, so it is fp32's choice unless fp32's best token ranks below `candidates` by
the estimate (fp32's tokens in every test and on the benchmark's 70 utterances). Outputs, as the argmax head
(token_head.py) names them:

- `next_token` [batch, 1]: the best unsuppressed candidate by its exact logit;
- `next_token_logprob` [batch, 1]: its exact logit minus the log-sum-exp over the unsuppressed vocabulary, the
  candidates' exact logits and the other tokens' estimates (openai-whisper's `avg_logprob` and the no-speech
  rule read it; the candidates hold nearly all the mass, so the estimates' error barely reaches it:
  docs/results/2026-12-06-shared-thread-pool.md);
- `logits` as exported, computed in fp32 only when the input `logits_wanted` is true (long-form decoding, whose
  timestamp rules read them), else an empty tensor: an `If` runs one branch, so a step that does not want them
  does not read the 80 MB.
"""

from __future__ import annotations

from pathlib import Path

from asr_engines.engines.passes.token_head import TokenHeadError, reduce_last_axis
from asr_engines.families import LOGITS_WANTED, NEXT_TOKEN, NEXT_TOKEN_LOGPROB

#: Tokens whose exact logit is computed each step: far past where fp32's choice ranks by the estimate.
SCREENED_CANDIDATES = 64
#: The estimate's weights: bits each, and how many share one scale along the hidden axis (MatMulNBits' block).
ESTIMATE_BITS, ESTIMATE_BLOCK = 4, 32


def add_screened_head(source: Path, target: Path, decoder: dict, candidates: int = SCREENED_CANDIDATES) -> None:
    """Write `source` (a Whisper KV-cache decoder ONNX, fp32) to `target` with the screened greedy head; `decoder`
    is the manifest's decoder settings (its suppressed tokens)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    projection = next((node for node in graph.node if node.op_type == "MatMul" and list(node.output) == ["logits"]), None)
    weights = {initializer.name: initializer for initializer in graph.initializer}
    if projection is None or projection.input[1] not in weights:
        raise TokenHeadError(f"{source}: no vocabulary projection (MatMul with constant weights) writes its logits")
    hidden, weight_name = projection.input
    weight = numpy_helper.to_array(weights[weight_name])  # [hidden, vocabulary]
    rows_name = next((name for name, initializer in weights.items() if tuple(initializer.dims) == weight.shape[::-1]
                      and np.array_equal(numpy_helper.to_array(initializer), weight.T)), None)
    if rows_name is None:  # untied: the exact rows are a transposed copy
        rows_name = "screen/rows"
        graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(weight.T), rows_name))
    candidates = min(candidates, weight.shape[1])
    mask = np.zeros(weight.shape[1], np.float32)
    mask[[token for token in decoder["suppress_tokens"] if token < len(mask)]] = -np.inf
    opset = next(entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx"))
    packed, scales = _four_bit_blocks(weight)
    constants = {"screen/mask": mask, "screen/k": np.array([candidates], np.int64), "screen/axis2": np.array([2], np.int64),
                 "screen/last": np.array([-1], np.int64), "screen/packed": packed, "screen/scales": scales}
    graph.initializer.extend(numpy_helper.from_array(value, name) for name, value in constants.items())
    if not any(entry.domain == "com.microsoft" for entry in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))

    def reduce(op: str, data: str, out: str) -> onnx.NodeProto:
        return reduce_last_axis(op, data, out, opset, "screen/last")

    full = helper.make_graph([helper.make_node("MatMul", [hidden, weight_name], ["screen/full_logits"], name="screen/FullMatMul")],
                             "logits_wanted", [], [helper.make_tensor_value_info("screen/full_logits", TensorProto.FLOAT, None)])
    empty = helper.make_graph([helper.make_node("Constant", [], ["screen/no_logits"], name="screen/NoLogits",
                                                value=numpy_helper.from_array(np.zeros((0, 0, 0), np.float32)))],
                              "logits_not_wanted", [], [helper.make_tensor_value_info("screen/no_logits", TensorProto.FLOAT, None)])
    graph.node.remove(projection)
    graph.node.extend([
        helper.make_node("If", [LOGITS_WANTED], ["logits"], name="screen/Logits", then_branch=full, else_branch=empty),
        helper.make_node("MatMulNBits", [hidden, "screen/packed", "screen/scales"], ["screen/estimates"], name="screen/MatMulNBits",
                         domain="com.microsoft", K=weight.shape[0], N=weight.shape[1], bits=ESTIMATE_BITS,
                         block_size=ESTIMATE_BLOCK, accuracy_level=4),  # 4: int8 arithmetic, VNNI where the CPU has it
        helper.make_node("Add", ["screen/estimates", "screen/mask"], ["screen/masked_estimates"], name="screen/MaskEstimates"),
        # suppressed tokens: -inf, never among the candidates
        helper.make_node("TopK", ["screen/masked_estimates", "screen/k"], ["screen/top", "screen/ids"], name="screen/TopK", axis=-1),
        helper.make_node("Gather", [rows_name, "screen/ids"], ["screen/rows_chosen"], name="screen/Rows", axis=0),
        helper.make_node("Unsqueeze", [hidden, "screen/axis2"], ["screen/hidden"], name="screen/Hidden"),
        helper.make_node("Mul", ["screen/rows_chosen", "screen/hidden"], ["screen/products"], name="screen/Products"),
        reduce("ReduceSum", "screen/products", "screen/exact"),
        helper.make_node("ArgMax", ["screen/exact"], ["screen/best_index"], name="screen/ArgMax", axis=-1, keepdims=1),
        helper.make_node("GatherElements", ["screen/ids", "screen/best_index"], ["screen/token3"], name="screen/Token", axis=-1),
        reduce("ReduceMax", "screen/token3", NEXT_TOKEN),  # [batch, 1, 1] -> [batch, 1]
        # the normalizer: the candidates' exact logits, the other tokens' estimates; LogSoftmax, not ReduceLogSumExp
        # (ten times slower on ONNX Runtime's CPU: docs/results/2026-12-07-log-softmax.md)
        helper.make_node("ScatterElements", ["screen/masked_estimates", "screen/ids", "screen/exact"], ["screen/normalized"],
                         name="screen/Normalized", axis=-1),
        helper.make_node("LogSoftmax", ["screen/normalized"], ["screen/logprobs"], name="screen/LogSoftmax", axis=-1),
        helper.make_node("GatherElements", ["screen/logprobs", "screen/token3"], ["screen/logprob3"], name="screen/LogProb3", axis=-1),
        reduce("ReduceMax", "screen/logprob3", NEXT_TOKEN_LOGPROB),
    ])
    logits = next(output for output in graph.output if output.name == "logits")
    logits.CopyFrom(helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch_size", "positions", "vocabulary"]))
    graph.input.append(helper.make_tensor_value_info(LOGITS_WANTED, TensorProto.BOOL, []))
    graph.output.extend([helper.make_tensor_value_info(NEXT_TOKEN, TensorProto.INT64, ["batch_size", 1]),
                         helper.make_tensor_value_info(NEXT_TOKEN_LOGPROB, TensorProto.FLOAT, ["batch_size", 1])])
    onnx.checker.check_model(model)
    onnx.save(model, str(target))


def _four_bit_blocks(weight):
    """MatMulNBits' form of `weight` [hidden, vocabulary]: per token, blocks of ESTIMATE_BLOCK hidden weights, each
    rounded to a signed 4-bit multiple of its own scale (max |w| / 7), stored offset by 8 (the op's default zero
    point), two to a byte, the first in the low nibble. Returns (packed [vocabulary, blocks, block / 2] uint8,
    scales [vocabulary, blocks] float32)."""
    import numpy as np

    hidden, vocabulary = weight.shape
    if hidden % ESTIMATE_BLOCK:
        raise TokenHeadError(f"hidden size {hidden} is not a multiple of the estimate's block of {ESTIMATE_BLOCK}")
    blocks = weight.T.reshape(vocabulary, hidden // ESTIMATE_BLOCK, ESTIMATE_BLOCK).astype(np.float32)
    scales = np.abs(blocks).max(axis=-1) / 7
    scales[scales == 0] = 1  # an all-zero block: any scale gives zeros
    codes = (np.clip(np.round(blocks / scales[..., np.newaxis]), -8, 7) + 8).astype(np.uint8)
    return codes[..., 0::2] | (codes[..., 1::2] << 4), scales.astype(np.float32)
