"""Speed choices decided per engine at build time (measure/choices.py, engines/build.py): the CPU int8 engine's
encoder form (int8, else fp32) and Whisper's encoder trim margin (the shortest within the budget against the
whole-window fp32 graphs on clean and noisy audio, else the whole window); recorded in the manifest, and the
runtime's default."""

from __future__ import annotations

import json

import pytest

from asr_engines.calibration.datasets import DEFAULT_DATASET, load_dataset
from asr_engines.measure import choices


class ScriptedRecognizer:
    """Writes each utterance's reference text, but for the utterances it is told to drop (by index, on noisy audio
    or on both): its WER is real, its cost chosen."""

    def __init__(self, drops_clean: set[int], drops_noisy: set[int]):
        utterances = load_dataset(DEFAULT_DATASET)[:4]
        self.lengths = {len(utterance.load()): (index, utterance.text) for index, utterance in enumerate(utterances)}
        self.drops_clean, self.drops_noisy, self.calls = drops_clean, drops_noisy, 0

    def transcribe(self, samples) -> str:
        index, text = self.lengths[len(samples)]
        noisy = self.calls >= len(self.lengths)  # the clean set is read first, then the noisy draws
        self.calls += 1
        return "" if index in (self.drops_noisy if noisy else self.drops_clean) else text

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        pass


@pytest.mark.parametrize("costs_by_margin,kept", [
    ({8.0: ({0}, set()), 16.0: (set(), set())}, 16.0),  # 8 s costs clean speech, 16 s nothing
    ({8.0: (set(), set()), 16.0: (set(), set())}, 8.0),
    ({8.0: (set(), {1}), 16.0: (set(), {2}), None: (set(), {3})}, None),  # no margin holds: the whole window
], ids=["16-s", "8-s", "whole"])
def test_the_shortest_margin_within_the_budget_is_kept_else_the_whole_window(tiny_whisper_onnx, tiny_whisper_engines,
                                                                             monkeypatch, costs_by_margin, kept):
    from asr_engines.engines.assets import read_exported_model

    manifest = tiny_whisper_engines / "tiny-whisper-fp32.json"
    monkeypatch.setattr(choices, "graph_recognizer", lambda model, graphs, threads: ScriptedRecognizer(set(), set()))
    monkeypatch.setattr(choices, "load_recognizer", lambda path, threads, trim_margin_s: ScriptedRecognizer(
        *costs_by_margin.get(trim_margin_s, (set(), set()))))
    judge = choices.engine_judge(read_exported_model(tiny_whisper_onnx), DEFAULT_DATASET, limit=4, noise_draws=1)
    record = judge(manifest, True)
    assert record["judged"] and record["margin_s"] == kept and record["reference"]["clean"] == 0.0
    assert record["within"] == (kept is not None)
    tried = list(record["tried"])
    assert tried == {8.0: ["8"], 16.0: ["8", "16"], None: ["8", "16", "whole"]}[kept]
    assert record["cost_clean"] == record["tried"][tried[-1]]["cost_clean"] and record["budget_points"] == 0.5
    assert all(max(costs.values()) > 0.5 for costs in list(record["tried"].values())[:-1])


def test_the_runtime_trims_by_the_decision_unless_told(tiny_whisper_engines, tmp_path):
    import shutil

    from asr_engines import load_recognizer

    for file in tiny_whisper_engines.glob("tiny-whisper-fp32*"):
        shutil.copy(file, tmp_path / file.name)
    manifest = tmp_path / "tiny-whisper-fp32.json"
    data = json.loads(manifest.read_text())
    with load_recognizer(manifest) as recognizer:
        assert recognizer.trim_margin_s == 8.0 and recognizer.decoding()["trim_decided"] is None  # no decision: the table's
    for decided, expected in ((None, None), (16.0, 16.0)):
        data["decoder"]["trim"] = {"judged": True, "margin_s": decided, "cost_clean": 0.1, "cost_noisy": 0.2}
        manifest.write_text(json.dumps(data))
        with load_recognizer(manifest) as recognizer:
            assert recognizer.trim_margin_s == expected
            assert recognizer.decoding()["trim_decided"] == {"judged": True, "margin_s": decided, "cost_clean": 0.1,
                                                             "cost_noisy": 0.2}
        with load_recognizer(manifest, trim_margin_s=4.0) as recognizer:
            assert recognizer.trim_margin_s == 4.0
    data["decoder"]["trim"] = "8"
    manifest.write_text(json.dumps(data))
    from asr_engines.manifest import ManifestError

    with pytest.raises(ManifestError, match="decoder.trim should be dict, not str"):
        load_recognizer(manifest)


def test_a_random_weight_whisper_build_says_its_margin_was_not_judged(tiny_whisper_onnx, tmp_path):
    from asr_engines import load_recognizer
    from asr_engines.engines.backends import make_builder
    from asr_engines.engines.build import build_engines

    (manifest,) = build_engines(tiny_whisper_onnx, tmp_path, make_builder("onnxruntime"), ["fp32"], progress=False,
                                judge=lambda model: choices.engine_judge(model, DEFAULT_DATASET, limit=2, noise_draws=1))
    trim = json.loads(manifest.read_text())["decoder"]["trim"]
    assert not trim["judged"] and trim["note"].startswith("not judged: fp32 reads") and trim["reference"]["clean"] >= 90
    with load_recognizer(manifest) as recognizer:
        assert recognizer.trim_margin_s == 8.0  # the precision's default, said to be unmeasured
        assert recognizer.decoding()["trim_decided"]["judged"] is False


@pytest.mark.slow
def test_tiny_en_engines_measure_their_margin(real_whisper_onnx, tmp_path):
    """Real weights: each engine's margin is measured against the whole-window fp32 graphs (8 utterances, one
    noise draw here; the build's default is 40 and three) and the kept one is within the budget or the whole window."""
    from asr_engines.engines.backends import make_builder
    from asr_engines.engines.build import build_engines

    manifests = build_engines(real_whisper_onnx, tmp_path, make_builder("onnxruntime"), ["fp32", "int8"], progress=False,
                              judge=lambda model: choices.engine_judge(model, DEFAULT_DATASET, limit=8, noise_draws=1))
    for manifest in manifests:
        trim = json.loads(manifest.read_text())["decoder"]["trim"]
        print(manifest.name, json.dumps(trim))
        assert trim["judged"] and trim["reference"]["clean"] < 20 and "8" in trim["tried"]
        assert trim["margin_s"] is None or max(trim["cost_clean"], trim["cost_noisy"]) <= 0.5
    forms = json.loads(manifests[1].read_text())["int8_forms"]
    assert forms["judged"] and forms["tried"][0]["forms"]["encoder"] == "int8-dynamic"
    assert forms["kept"]["encoder"] == ("int8-dynamic" if forms["tried"][0]["within"] else "fp32")


def scripted_judge(costs_by_encoder: dict[str, float], judged: bool = True):
    """A judge that reads the staged engine's encoder form and gives it the cost scripted for it (both kinds);
    records the forms it was shown."""
    shown = []

    def factory(model):
        def judge(manifest_path, last):
            data = json.loads(manifest_path.read_text())
            encoder = data["build"]["encoder"]["variant"]
            shown.append((encoder, last))
            cost = costs_by_encoder[encoder]
            within = judged and cost <= 0.5
            return {"reference": {"clean": 5.0, "noisy": 9.0}, "utterances": 4, "noise": "study", "noise_draws": 1,
                    "budget_points": 0.5, "tried": {"8": {"cost_clean": cost, "cost_noisy": cost}},
                    "cost_clean": cost, "cost_noisy": cost, "judged": judged, "within": within,
                    "margin_s": 8.0 if within or last else None, **({} if judged else {"note": "not judged"})}
        return judge

    return factory, shown


@pytest.mark.parametrize("costs,kept,shown", [
    ({"int8-dynamic": 0.3, "fp32": 0.0}, "int8-dynamic", [("int8-dynamic", False)]),
    ({"int8-dynamic": 0.9, "fp32": 0.2}, "fp32", [("int8-dynamic", False), ("fp32", True)]),
], ids=["int8-within", "int8-over"])
def test_the_cpu_int8_encoder_is_int8_only_where_its_measured_cost_holds(tiny_whisper_onnx, tmp_path, costs, kept, shown):
    import onnx

    from asr_engines.engines.backends import make_builder
    from asr_engines.engines.build import build_engines
    from asr_engines.manifest import load_manifest

    factory, seen = scripted_judge(costs)
    (path,) = build_engines(tiny_whisper_onnx, tmp_path, make_builder("onnxruntime"), ["int8"], progress=False, judge=factory)
    manifest = load_manifest(path)
    manifest.verify_files(rehash=True)  # the kept encoder's file is the one checksummed, whichever was built last
    assert seen == shown and str(manifest.graph_variant("encoder")) == kept
    forms = manifest.int8_forms
    assert forms["kept"] == {"encoder": kept, "decoder": "int8-dynamic", "decoder_with_past": "int8-dynamic"}
    assert [entry["forms"]["encoder"] for entry in forms["tried"]] == [encoder for encoder, _ in shown]
    assert [entry["within"] for entry in forms["tried"]] == [costs[encoder] <= 0.5 for encoder, _ in shown]
    assert forms["reference"] == {"clean": 5.0, "noisy": 9.0} and forms["budget_points"] == 0.5
    assert manifest.decoder["trim"]["margin_s"] == 8.0 and manifest.decoder["trim"]["cost_clean"] == costs[kept]
    ops = {node.op_type for node in onnx.load(str(manifest.graph_path("encoder"))).graph.node}
    assert ("MatMulInteger" in ops or "DynamicQuantizeMatMul" in ops) == (kept == "int8-dynamic")
    assert not list(tmp_path.glob(".staging*")) and sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [*manifest.files.values(), manifest.decoder["tokenizer"], path.name])


def test_an_unjudged_or_unmeasured_int8_engine_takes_the_safest_form(tiny_whisper_onnx, tmp_path):
    from asr_engines.engines.backends import make_builder
    from asr_engines.engines.build import build_engines
    from asr_engines.manifest import load_manifest

    factory, seen = scripted_judge({"int8-dynamic": 0.0, "fp32": 0.0}, judged=False)
    (path,) = build_engines(tiny_whisper_onnx, tmp_path / "unjudged", make_builder("onnxruntime"), ["int8"],
                            progress=False, judge=factory)
    manifest = load_manifest(path)
    assert seen == [("int8-dynamic", False), ("fp32", True)] and str(manifest.graph_variant("encoder")) == "fp32"
    assert not manifest.int8_forms["judged"] and manifest.int8_forms["kept"]["encoder"] == "fp32"
    (path,) = build_engines(tiny_whisper_onnx, tmp_path / "unmeasured", make_builder("onnxruntime"), ["int8"], progress=False)
    manifest = load_manifest(path)
    assert str(manifest.graph_variant("encoder")) == "fp32" and "trim" not in manifest.decoder
    assert manifest.int8_forms["tried"] == [] and manifest.int8_forms["note"].startswith("not measured")
