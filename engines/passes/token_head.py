"""Whisper's decoders given a greedy head: the next token chosen inside the graph, so only its id crosses to the host.

Greedy decoding needs one token id per step, but the exported decoders return all logits (51,864 float32 per
token: 203 KiB device->host on a TensorRT plan). The head adds, beside `logits` (still there for long-form
decoding, whose timestamp rules depend on the tokens so far):

- `next_token` [batch, 1] int64: ArgMax over the last position's logits with the suppressed tokens masked to -inf
  (`suppress_tokens`; in the first decoder also `begin_suppress_tokens`), the first index on ties as numpy's argmax;
- `next_token_logprob` [batch, 1]: that token's log-probability over the masked logits (openai-whisper's
  `avg_logprob` sums these);
- in the first decoder, `no_speech_logprob` [batch, 1]: the log-probability of the no-speech token at the
  start-of-transcript position, over the raw logits (openai-whisper's `no_speech_prob`).

Opset 17 and 18 forms (Reduce* take their axes as an attribute before 18, as an input from 18).
"""

from __future__ import annotations

from pathlib import Path

from asr_engines.families import NEXT_TOKEN, NEXT_TOKEN_LOGPROB, NO_SPEECH_LOGPROB


class TokenHeadError(ValueError):
    """The graph has no `logits` output of shape [batch, positions, vocabulary]."""


def reduce_last_axis(op: str, data: str, out: str, opset: int, axis: str):
    """An ONNX Reduce* node over the last axis, dimension dropped, in the form `opset` takes: the axes as an input
    (`axis`: an int64 initializer holding [-1]) from opset 18 (ReduceSum from 13), else as an attribute."""
    from onnx import helper

    if opset >= (13 if op == "ReduceSum" else 18):
        return helper.make_node(op, [data, axis], [out], name=out, keepdims=0)
    return helper.make_node(op, [data], [out], name=out, axes=[-1], keepdims=0)


def add_token_head(source: Path, target: Path, decoder: dict, first: bool) -> None:
    """Write `source` (a Whisper decoder ONNX) to `target` with the greedy head; `decoder` is the manifest's
    decoder settings; `first`: the decoder that reads the prompt (begin-suppression, no-speech output)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    logits = next((output for output in graph.output if output.name == "logits"), None)
    dims = logits.type.tensor_type.shape.dim if logits is not None else []
    if len(dims) != 3 or not dims[2].dim_value:
        raise TokenHeadError(f"{source}: no logits output [batch, positions, vocabulary] to put a greedy head on")
    vocabulary = dims[2].dim_value
    opset = next(entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx"))
    mask = np.zeros(vocabulary, np.float32)
    suppressed = list(decoder["suppress_tokens"]) + (list(decoder["begin_suppress_tokens"]) if first else [])
    mask[[token for token in suppressed if token < vocabulary]] = -np.inf
    constants = {"head/mask": mask, "head/last": np.array([-1], np.int64), "head/end": np.array([2**62], np.int64),
                 "head/positions": np.array([1], np.int64)}
    if opset >= 18:
        constants["head/axis"] = np.array([-1], np.int64)
    graph.initializer.extend(numpy_helper.from_array(value, name) for name, value in constants.items())

    def reduce(op: str, data: str, out: str) -> onnx.NodeProto:
        return reduce_last_axis(op, data, out, opset, "head/axis")

    nodes = [
        helper.make_node("Slice", ["logits", "head/last", "head/end", "head/positions"], ["head/last_logits"], name="head/Slice"),
        helper.make_node("Cast", ["head/last_logits"], ["head/last_float"], name="head/Cast", to=TensorProto.FLOAT),
        helper.make_node("Add", ["head/last_float", "head/mask"], ["head/masked"], name="head/Mask"),
        helper.make_node("ArgMax", ["head/masked"], [NEXT_TOKEN], name="head/ArgMax", axis=-1, keepdims=0),
        # the chosen token's log-probability is the highest: LogSoftmax, not ReduceLogSumExp (ten times slower
        # on ONNX Runtime's CPU: docs/results/2026-12-07-log-softmax.md)
        helper.make_node("LogSoftmax", ["head/masked"], ["head/logprobs"], name="head/LogSoftmax", axis=-1),
        reduce("ReduceMax", "head/logprobs", NEXT_TOKEN_LOGPROB),
    ]
    outputs = [helper.make_tensor_value_info(NEXT_TOKEN, TensorProto.INT64, [dims[0].dim_param or dims[0].dim_value, 1]),
               helper.make_tensor_value_info(NEXT_TOKEN_LOGPROB, TensorProto.FLOAT, [dims[0].dim_param or dims[0].dim_value, 1])]
    if first:
        no_speech = decoder["no_timestamps_id"] - 1  # <|nospeech|> (<|nocaptions|> in English-only vocabularies)
        graph.initializer.extend(numpy_helper.from_array(np.array([value], np.int64), name) for name, value in
                                 (("head/no_speech", no_speech), ("head/no_speech_end", no_speech + 1), ("head/first", 0),
                                  ("head/one", 1), ("head/vocabulary", 2)))
        nodes += [
            helper.make_node("Slice", ["logits", "head/first", "head/one", "head/positions"], ["head/sot_logits"], name="head/SotSlice"),
            helper.make_node("Cast", ["head/sot_logits"], ["head/sot_float"], name="head/SotCast", to=TensorProto.FLOAT),
            helper.make_node("LogSoftmax", ["head/sot_float"], ["head/sot_logprobs"], name="head/SotLogSoftmax", axis=-1),
            helper.make_node("Slice", ["head/sot_logprobs", "head/no_speech", "head/no_speech_end", "head/vocabulary"],
                             ["head/no_speech_logprob3"], name="head/NoSpeechSlice"),
            reduce("ReduceMax", "head/no_speech_logprob3", NO_SPEECH_LOGPROB),  # [batch, 1, 1] -> [batch, 1]
        ]
        outputs.append(helper.make_tensor_value_info(NO_SPEECH_LOGPROB, TensorProto.FLOAT, [dims[0].dim_param or dims[0].dim_value, 1]))
    graph.node.extend(nodes)
    graph.output.extend(outputs)
    onnx.checker.check_model(model)
    onnx.save(model, str(target))
