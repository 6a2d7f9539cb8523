"""The bench end to end on the tiny engines: rows with finite WER and speed, JSON and CSV."""

import csv
import json
import math

import pytest
from click.testing import CliRunner

from asr_engines.commands import bench


def test_bench_writes_rows_with_finite_wer_and_speed(tiny_engines, tmp_path):
    out = tmp_path / "results"
    result = CliRunner().invoke(bench.command, [
        str(tiny_engines / "tiny-fp32.onnx"), str(tiny_engines / "tiny-fp32.json"), str(tiny_engines / "tiny-int8.onnx"),
        "--limit", "3", "--noise-draws", "2", "--skip-noisy-above", "inf", "--baseline-s", "0", "--meter", "none",
        "--threads", "1", "--warmup", "1", "--out", str(out), "--no-progress", "--store", str(tmp_path / "store.sqlite"),
    ])
    assert result.exit_code == 0, result.output
    rows = json.loads((out / "results.json").read_text())
    assert [row["engine"] for row in rows] == ["tiny-fp32", "tiny-int8"]  # the same engine twice is run once
    for row in rows:
        assert math.isfinite(row["wer_clean"]) and math.isfinite(row["wer_noisy"]) and len(row["wer_noisy_draws"]) == 2
        assert row["rtfx"] > 0 and row["latency_p50_ms"] <= row["latency_p90_ms"] <= row["latency_p99_ms"]
        assert row["load_s"] > 0 and row["peak_rss_mb"] > 10 and row["utterances"] == 3
        assert row["energy_j"] is None and row["meter"] == "none" and "no power meter" in row["energy_note"]
        assert row["extra"]["decoding"] == {"chunk_s": 20.0, "stride_s": 4.0}  # how the recognizer read the audio
        load = row["machine_load"]  # how busy the machine was while the clean pass was timed
        assert row["machine_quiet"] is load["quiet"] and load["wall_s"] > 0 and load["other_cores"] >= 0
    with open(out / "results.csv") as handle:
        assert [line["engine"] for line in csv.DictReader(handle)] == ["tiny-fp32", "tiny-int8"]
    assert "tiny-int8" in result.output and "wer_clean" in result.output


def test_a_model_that_does_not_transcribe_gets_no_noisy_passes(tiny_engines, tmp_path):
    """Random weights read about 100 % WER: the noisy passes would say nothing, so they are skipped, and the row says why."""
    result = CliRunner().invoke(bench.command, [
        str(tiny_engines / "tiny-int8.json"), "--limit", "2", "--baseline-s", "0", "--meter", "none", "--threads", "1",
        "--out", str(tmp_path / "out"), "--no-progress", "--store", str(tmp_path / "store.sqlite")])
    assert result.exit_code == 0, result.output
    (row,) = json.loads((tmp_path / "out" / "results.json").read_text())
    assert row["wer_clean"] >= 90 and row["wer_noisy"] is None and row["wer_noisy_draws"] == []
    assert row["extra"]["wer_noisy_note"].startswith("not measured: ") and "does not transcribe" in row["extra"]["wer_noisy_note"]


def test_bench_refuses_bad_input_in_one_line(tmp_path, tiny_engines):
    (tmp_path / "model.onnx").write_bytes(b"")
    result = CliRunner().invoke(bench.command, [str(tmp_path / "model.onnx")])
    assert result.exit_code != 0 and "no manifest" in result.output
    result = CliRunner().invoke(bench.command, [str(tiny_engines / "tiny-fp32.json"), "--noise", "loud"])
    assert result.exit_code != 0 and "bad noise spec 'loud'" in result.output
    result = CliRunner().invoke(bench.command, [str(tiny_engines / "tiny-fp32.json"), "--dataset", str(tmp_path / "none")])
    assert result.exit_code != 0 and "no such dataset" in result.output


def test_bench_energy_columns_from_a_fake_orin_nano(tiny_engines, tmp_path):
    """Constant 7.5 W on VDD_IN: gross energy is 7.5 W x the window, net of the measured baseline is ~0,
    and a set too short for 10 sample periods is repeated until the window is long enough."""
    from stand_ins.sysfs import FakeBoard

    board = FakeBoard(tmp_path / "root", "orin-nano")
    board.set_power("VDD_IN", 7.5)
    out = tmp_path / "results"
    result = CliRunner().invoke(bench.command, [
        str(tiny_engines / "tiny-int8.json"), "--limit", "2", "--noise", "none", "--meter", "ina3221",
        "--meter-root", str(tmp_path / "root"), "--baseline-s", "0.5", "--threads", "1", "--out", str(out), "--no-progress",
        "--store", str(tmp_path / "store.sqlite"),
    ])
    assert result.exit_code == 0, result.output
    (row,) = json.loads((out / "results.json").read_text())
    assert row["meter"] == "ina3221" and row["rail"] == "VDD_IN" and row["gpu_rail"] == "VDD_CPU_GPU_CV"
    assert row["baseline_w"] == pytest.approx(7.5, rel=1e-3) and row["mean_power_w"] == pytest.approx(7.5, rel=1e-3)
    assert row["energy_j"] > 0 and abs(row["energy_net_j"]) < 1e-3 * row["energy_j"]
    assert row["energy_rails_j"]["VDD_SOC"] == pytest.approx(row["energy_j"] / 7.5, rel=1e-3)  # 1 W rail
    assert row["energy_repeats"] > 1 and row["energy_reliable"] and row["sensor_faults"] == 0
    assert 50 < row["sample_hz"] <= 105 and row["wer_noisy"] is None
    assert row["system_mem_mb"] is not None and row["extra"]["fingerprint"]["cpu"]


def test_a_hardware_counter_is_the_energy_figure_when_there_is_one():
    from asr_engines.measure.measurement import _energy_columns
    from asr_engines.measure.meters import Measurement, NoneMeter

    window = Measurement("clean", duration_s=4.0, energy_j={"gpu0": 402.0, "total": 402.0}, mean_w=None, samples=80,
                         sample_hz=20.0, reliable=True, counter_energy_j={"gpu0": 400.0, "total": 400.0})
    columns = _energy_columns(window, repeats=2, baseline_w=50.0, audio_s=10.0, utterances=5, meter=NoneMeter())
    assert columns["energy_j"] == 200.0 and columns["energy_trapezoid_j"] == 201.0 and columns["energy_counter_j"] == 200.0
    assert columns["energy_net_j"] == 100.0 and columns["j_per_audio_s"] == 10.0 and columns["mean_power_w"] == 100.0
