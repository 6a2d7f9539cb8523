"""INT8 that keeps its accuracy: a budget of WER points over fp32, on clean and on noisy held-out audio.

The rule-based float nodes (quantize.float_nodes: the first conv, and nodes whose input keeps under 30 dB of
signal to 8-bit quantisation noise) are where it starts: a proxy, judged on the calibration data. Then the
INT8 graph is transcribed on utterances of the calibration dataset that the calibration stream did not use,
clean and with the calibration noise, beside fp32. While either WER rises more than the budget, the most
harmful quantized nodes go back to float: harm measured as the output's SQNR on noisy calibration inputs
when only that node runs in int8. A bounded number of rounds; where the budget cannot be met, or only with
so many nodes in float that int8 would have no speed left, the decision says so and keeps the cost it
measured. One decision per model, taken on ONNX Runtime's CPU int8 form: every backend's int8 engine gets
the same float list (unquantized nodes for ONNX Runtime, pinned layers or no Q/DQ for TensorRT).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from asr_engines.calibration.stream import CalibrationStream
from asr_engines.engines.assets import ExportedModel
from asr_engines.engines.int8.quantize import INT8_FORMS, float_nodes, prepare, quantize_prepared
from asr_engines.engines.passes.qdq import only_quantized, quantized_nodes, with_float_nodes
from asr_engines.files import staging_dir
from asr_engines.variants import Precision

log = logging.getLogger(__name__)

#: (graph files for the calibrated parts, or None for the fp32 engine; whether noisy) -> WER % on held-out audio
WerProbe = Callable[[dict[str, Path] | None, bool], float]
#: (the model, its calibration stream) -> the probe that judges its int8 candidates
ProbeFactory = Callable[[ExportedModel, CalibrationStream], WerProbe]


@dataclass(frozen=True)
class Int8Budget:
    """How much WER int8 may cost, and how hard to try."""

    wer_points: float = 0.5  # over fp32, on clean and on noisy audio alike
    max_rounds: int = 4
    share_per_round: float = 0.15  # of the still-quantized nodes taken back to float in a round (at least one)
    max_float_share: float = 0.6  # past this share of the quantizable nodes in float, int8 has little speed left
    #: fp32 at or above this clean WER (%) is no model WER can judge int8 by (random weights read about 100 %)
    unjudgeable_wer: float = 90.0


@dataclass
class Int8Decision:
    """Per calibrated graph, the nodes that stay float and why; and how the budget went (None: no budget)."""

    float_nodes: dict[str, dict[str, str]]
    budget: dict | None = None


@dataclass
class _Round:
    float_nodes: int
    wer_clean: float
    wer_noisy: float
    cost_clean: float
    cost_noisy: float
    taken_back: list[str] = field(default_factory=list)


def decide_int8(model: ExportedModel, stream: CalibrationStream, probe_factory: ProbeFactory | None,
                budget: Int8Budget | None, out_dir: Path) -> Int8Decision:
    """The float nodes of every calibrated graph of `model`: the rule's, then those the WER budget takes back. Its
    scratch files (hundreds of MB for large models) live in a staging folder of `out_dir`, the build's own, which
    the next build removes if this one is killed."""
    form = INT8_FORMS["cpu"]
    with staging_dir(out_dir) as work:
        prepared, quantized, excluded = {}, {}, {}
        for part in (part for part in model.parts if part.calibrated):
            prepared[part.name] = work / f"{part.name}.prep.onnx"
            prepare(model.dir / part.file, prepared[part.name])
            excluded[part.name] = float_nodes(prepared[part.name], stream, form)
        if probe_factory is None or budget is None:
            return Int8Decision(excluded)
        for name in prepared:
            quantized[name] = work / f"{name}.int8.onnx"
            quantize_prepared(prepared[name], quantized[name], stream, form, excluded[name])
        return _guard(model, stream, probe_factory(model, stream), budget, work, prepared, quantized, excluded)


def _guard(model: ExportedModel, stream: CalibrationStream, probe: WerProbe, budget: Int8Budget, work: Path,
           prepared: dict[str, Path], quantized: dict[str, Path], excluded: dict[str, dict[str, str]]) -> Int8Decision:
    import onnx

    float_models = {name: onnx.load(str(path)) for name, path in prepared.items()}
    int8_models = {name: onnx.load(str(path)) for name, path in quantized.items()}
    candidates = {(name, node) for name, m in int8_models.items() for node in quantized_nodes(m, INT8_FORMS["cpu"].op_types)}
    total = len(candidates) + sum(len(nodes) for nodes in excluded.values())
    fp32_clean = probe(None, False)
    if fp32_clean >= budget.unjudgeable_wer:
        note = (f"fp32 reads {fp32_clean:.0f} % WER on the held-out clean audio, so WER cannot judge int8 (random "
                "weights?): the rule alone decides")
        log.warning("int8 budget: %s", note)
        return Int8Decision(excluded, {"wer_points": budget.wer_points, Precision.FP32: {"wer_clean": fp32_clean},
                                       "rounds": [], "met": None, "note": note, "quantizable_nodes": total})
    fp32_noisy = probe(None, True)
    rounds: list[_Round] = []
    sensitivity: dict[tuple[str, str], float] | None = None
    taken: dict[tuple[str, str], str] = {}
    for number in range(budget.max_rounds + 1):
        files = {}
        for name, int8_model in int8_models.items():
            files[name] = work / f"{name}.round{number}.onnx"
            onnx.save(with_float_nodes(int8_model, float_models[name], {node for part, node in taken if part == name}), str(files[name]))
        clean, noisy = probe(files, False), probe(files, True)
        rounds.append(_Round(sum(len(nodes) for nodes in excluded.values()) + len(taken), clean, noisy,
                             clean - fp32_clean, noisy - fp32_noisy))
        log.info("int8 budget, round %d: WER clean %.2f %% (%+.2f), noisy %.2f %% (%+.2f) against fp32; %d of %d nodes in float",
                 number, clean, clean - fp32_clean, noisy, noisy - fp32_noisy, rounds[-1].float_nodes, total)
        met = max(clean - fp32_clean, noisy - fp32_noisy) <= budget.wer_points
        remaining = sorted(candidates - set(taken))
        if met or number == budget.max_rounds or not remaining or rounds[-1].float_nodes > budget.max_float_share * total:
            break
        if sensitivity is None:
            sensitivity = node_sensitivity(int8_models, float_models, stream)
        harmful = sorted(remaining, key=lambda key: sensitivity[key])[: max(1, math.ceil(budget.share_per_round * len(remaining)))]
        for key in harmful:
            taken[key] = (f"WER budget, round {number + 1}: output SQNR {sensitivity[key]:.1f} dB on noisy audio "
                          "with only this node in int8")
        rounds[-1].taken_back = [node for _, node in harmful]
    for (name, node), reason in taken.items():
        excluded[name][node] = reason
    last = rounds[-1]
    note = "" if met else (f"budget not met: int8 costs {last.cost_clean:+.2f} WER points clean and {last.cost_noisy:+.2f} noisy "
                           f"with {last.float_nodes} of {total} nodes in float; the engine keeps that cost")
    if note:
        log.warning("int8 budget: %s", note)
    return Int8Decision(excluded, {"wer_points": budget.wer_points, Precision.FP32: {"wer_clean": fp32_clean, "wer_noisy": fp32_noisy},
                                   "rounds": [asdict(entry) for entry in rounds], "met": met, "note": note,
                                   "quantizable_nodes": total})


def node_sensitivity(int8_models: dict, float_models: dict, stream: CalibrationStream, samples: int = 4) -> dict[tuple[str, str], float]:
    """(graph, node) -> SQNR (dB) of the graph's output when only that node runs in int8, against float, over
    the stream's noisy samples (its clean ones if it has none). Lower is more harmful."""
    import onnxruntime

    noisy = stream.inputs[: stream.description.get("noisy") or len(stream.inputs)][:samples]
    scores = {}
    for name, int8_model in int8_models.items():
        reference_session = onnxruntime.InferenceSession(float_models[name].SerializeToString(), providers=["CPUExecutionProvider"])
        references = [reference_session.run(None, sample)[0] for sample in noisy]
        nodes = quantized_nodes(int8_model, INT8_FORMS["cpu"].op_types)
        for node in nodes:
            alone = only_quantized(int8_model, float_models[name], {node})
            session = onnxruntime.InferenceSession(alone.SerializeToString(), providers=["CPUExecutionProvider"])
            errors = [session.run(None, sample)[0] - reference for sample, reference in zip(noisy, references)]
            signal = sum(float(np.sum(np.square(reference, dtype=np.float64))) for reference in references)
            noise = sum(float(np.sum(np.square(error, dtype=np.float64))) for error in errors)
            scores[name, node] = float("inf") if noise == 0 else 10 * math.log10(signal / noise)
    return scores
