"""Bad input is one line, a non-zero exit and nothing stored; an engine is what its manifest says or it does not
load; every row says how its numbers were measured."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile
from click.testing import CliRunner

from asr_engines import load_recognizer
from asr_engines.audio import AudioError, checked_samples, load_audio
from asr_engines.calibration.datasets import DatasetError, load_dataset
from asr_engines.commands import bench
from asr_engines.manifest import EngineManifest, ManifestError
from asr_engines.variants import Precision, Variant


def run_bench(tmp_path, *arguments):
    store = tmp_path / "store.sqlite"
    result = CliRunner().invoke(bench.command, [*arguments, "--meter", "none", "--baseline-s", "0", "--threads", "1",
                                             "--out", str(tmp_path / "out"), "--store", str(store), "--no-progress"])
    return result, store


def one_utterance_dataset(folder, samples, name="1-2-0000"):
    folder.mkdir(parents=True, exist_ok=True)
    soundfile.write(folder / f"{name}.wav", samples, 16000, subtype="FLOAT")
    (folder / "1-2.trans.txt").write_text(f"{name} HELLO THERE\n")
    return folder


def test_non_finite_audio_is_refused_naming_the_file(tmp_path, tiny_engines):
    samples = np.random.default_rng(0).uniform(-0.3, 0.3, 16000).astype(np.float32)
    samples[100] = np.nan
    dataset = one_utterance_dataset(tmp_path / "nan", samples)
    with pytest.raises(AudioError, match="1-2-0000.wav: holds NaN or infinite samples"):
        load_audio(dataset / "1-2-0000.wav")
    with pytest.raises(AudioError, match="NaN or infinite"):
        checked_samples(np.array([0.0, np.inf], np.float32), 16000)
    result, store = run_bench(tmp_path, str(tiny_engines / "tiny-fp32.json"), "--dataset", str(dataset))
    assert result.exit_code == 1 and result.output.strip() == f"bench: {dataset / '1-2-0000.wav'}: holds NaN or infinite samples"
    assert not store.exists() and not (tmp_path / "out").exists()


def test_a_corrupt_or_empty_file_in_the_dataset_stops_the_bench_before_any_engine(tmp_path, tiny_engines):
    dataset = one_utterance_dataset(tmp_path / "bad", np.zeros(16000, np.float32))
    (dataset / "1-2-0001.flac").write_bytes(b"fLaC" + bytes(300))
    (dataset / "1-2.trans.txt").write_text("1-2-0000 HELLO\n1-2-0001 THERE\n")
    result, store = run_bench(tmp_path, str(tiny_engines / "tiny-fp32.json"), "--dataset", str(dataset))
    assert result.exit_code == 1 and result.output.startswith(f"bench: {dataset / '1-2-0001.flac'}: unreadable audio")
    assert "tiny-fp32" not in result.output and not store.exists()


@pytest.mark.parametrize(("option", "value"), [("--noise-draws", "0"), ("--noise-draws", "-2"), ("--threads", "0"),
                                                ("--threads", "-3"), ("--limit", "0")])
def test_nonsense_counts_are_refused(tmp_path, tiny_engines, option, value):
    result = CliRunner().invoke(bench.command, [str(tiny_engines / "tiny-fp32.json"), option, value])
    assert result.exit_code == 2 and f"Invalid value for '{option}'" in result.output and "is not in the range" in result.output


def test_manifest_mistakes_are_one_line(tmp_path, utterances):
    with pytest.raises(DatasetError, match="missing.jsonl: no such dataset folder or manifest"):
        load_dataset(tmp_path / "missing.jsonl")
    with pytest.raises(DatasetError, match="missing.csv: no such dataset folder or manifest"):
        load_dataset(tmp_path / "missing.csv")
    (tmp_path / "list.jsonl").write_text('{"audio": "a.wav", "text": "A"}\n["a.wav", "B"]\n')
    with pytest.raises(DatasetError, match=r"list.jsonl:2: a list, not an object with 'audio' and 'text'"):
        load_dataset(tmp_path / "list.jsonl")
    (tmp_path / "gone.jsonl").write_text(json.dumps({"audio": "gone.flac", "text": "HELLO"}) + "\n")
    (utterance,) = load_dataset(tmp_path / "gone.jsonl")
    with pytest.raises(AudioError, match="gone.flac: no such file"):
        utterance.load()


def test_an_engine_file_swapped_for_another_is_refused(tmp_path, tiny_engines):
    copied = tmp_path / "engines"
    shutil.copytree(tiny_engines, copied)
    shutil.copy(copied / "tiny-fp32.onnx", copied / "tiny-int8.onnx")  # an fp32 file in the int8 engine's place
    with pytest.raises(ManifestError, match=r"tiny-int8.onnx is not the file tiny-int8.json was built with \(sha256 differs\)"):
        load_recognizer(copied / "tiny-int8.json")
    result, store = run_bench(tmp_path, str(copied / "tiny-fp32.json"), str(copied / "tiny-int8.json"), "--limit", "1")
    assert result.exit_code == 1 and "tiny-int8.onnx is not the file tiny-int8.json was built with" in result.output
    assert not store.exists()  # refused before anything was measured
    assert load_recognizer(copied / "tiny-fp32.json").precision == "fp32"


def test_the_file_hash_is_remembered_by_size_and_time(tmp_path, monkeypatch):
    import asr_engines.files

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    engine = tmp_path / "e.onnx"
    engine.write_bytes(b"engine bytes")
    first = asr_engines.files.cached_sha256(engine)
    monkeypatch.setattr(asr_engines.files, "sha256_file", lambda path: pytest.fail("hashed again"))
    assert asr_engines.files.cached_sha256(engine) == first
    engine.write_bytes(b"other engine bytes")
    monkeypatch.undo()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert asr_engines.files.cached_sha256(engine) != first


def test_the_row_precision_is_what_ran():
    from asr_engines.measure.measurement import precision_run

    def built(build: dict) -> EngineManifest:
        return EngineManifest(engine="m-int8", model="m", family="ctc", precision=Precision.INT8, variant=Variant.INT8,
                              backend="tensorrt", front_end={}, decoder={}, files={}, build={"model": build}, files_sha256={})

    assert precision_run(built({"layer_precisions": {"int8": 12, "fp16": 30, "data movement": 4}})) == Precision.INT8
    fp16_named_int8 = built({"layer_precisions": {"fp16": 40, "fp32": 6}})
    assert precision_run(fp16_named_int8) == Precision.FP16  # TensorRT ran no INT8 kernel: the row says fp16
    assert precision_run(built({"int8_form": "cpu"})) == Precision.INT8


def test_rows_say_what_the_sensor_averaged_and_the_meters_settings(tmp_path, tiny_engines):
    from stand_ins.sysfs import FakeBoard

    FakeBoard(tmp_path / "root", "orin-nano").set_power("VDD_IN", 7.5)
    result = CliRunner().invoke(bench.command, [
        str(tiny_engines / "tiny-int8.json"), "--limit", "1", "--noise", "none", "--meter", "ina3221",
        "--meter-root", str(tmp_path / "root"), "--baseline-s", "0", "--threads", "1", "--out", str(tmp_path / "out"),
        "--no-progress", "--store", str(tmp_path / "store.sqlite")])
    assert result.exit_code == 0, result.output
    (row,) = json.loads((tmp_path / "out" / "results.json").read_text())
    assert row["sensor_averaging"] == "1-0040: 1 samples averaged, refreshed every 6 ms"
    assert row["meter_info"]["1-0040/update_interval"] == "6" and row["meter_info"]["total_rail"] == "VDD_IN"


def test_system_memory_is_labelled_when_other_processes_move_it():
    from test_report import make_row

    from asr_engines.measure.measurement import _system_memory_note
    from asr_engines.measure.memory import MemoryPeaks, judge_system_memory

    row = make_row("m-fp32")
    judge_system_memory(row, 2000.0, 2050.0)
    assert row.system_mem_note == ""
    judge_system_memory(row, 2000.0, 20500.0)
    assert row.system_mem_note.startswith("contaminated: system-wide used memory moved +18500 MB")
    assert _system_memory_note(MemoryPeaks(rss_mb=900, system_mb=19341, others_mb=18400), "cpu").startswith(
        "contaminated: other processes' memory rose by 18400 MB")
    assert _system_memory_note(MemoryPeaks(rss_mb=900, system_mb=950, others_mb=20), "cpu") == ""
    assert "needs NVML, or root on a Jetson (nvmap)" in _system_memory_note(MemoryPeaks(), "cuda:0 Orin")


def test_nvmap_gives_a_processes_gpu_memory(tmp_path):
    from asr_engines.measure.memory import NVMAP_CLIENTS, nvmap_process_mb, process_gpu_reader

    clients = tmp_path / NVMAP_CLIENTS
    clients.parent.mkdir(parents=True)
    clients.write_text("CLIENT                        PROCESS      PID        SIZE\n"
                       "user                          python3      4242     512000K\n"
                       "user                          python3      4242      12288K\n"
                       "user                          gnome-shell  1111      90000K\n"
                       "total                                               614288K\n")
    assert nvmap_process_mb(4242, tmp_path) == pytest.approx(512)
    assert nvmap_process_mb(9999, tmp_path) == 0
    assert process_gpu_reader(4242, tmp_path)() == pytest.approx(512)
    assert nvmap_process_mb(4242, tmp_path / "elsewhere") is None
