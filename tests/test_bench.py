"""The bench end to end on the tiny engines: rows with finite WER and speed, JSON and CSV."""

import csv
import json
import math

from click.testing import CliRunner

from runtime import bench


def test_bench_writes_rows_with_finite_wer_and_speed(tiny_engines, tmp_path):
    out = tmp_path / "results"
    result = CliRunner().invoke(bench.main, [
        str(tiny_engines / "tiny-fp32.onnx"), str(tiny_engines / "tiny-fp32.json"), str(tiny_engines / "tiny-int8.onnx"),
        "--limit", "3", "--noise-draws", "2", "--baseline-s", "0", "--meter", "none", "--threads", "1",
        "--warmup", "1", "--out", str(out), "--no-progress",
    ])
    assert result.exit_code == 0, result.output
    rows = json.loads((out / "results.json").read_text())
    assert [row["engine"] for row in rows] == ["tiny-fp32", "tiny-int8"]  # the same engine twice is run once
    for row in rows:
        assert math.isfinite(row["wer_clean"]) and math.isfinite(row["wer_noisy"]) and len(row["wer_noisy_draws"]) == 2
        assert row["rtfx"] > 0 and row["latency_p50_ms"] <= row["latency_p90_ms"] <= row["latency_p99_ms"]
        assert row["load_s"] > 0 and row["peak_rss_mb"] > 10 and row["utterances"] == 3
        assert row["energy_j"] is None and row["meter"] == "none" and "no power meter" in row["energy_note"]
    with open(out / "results.csv") as handle:
        assert [line["engine"] for line in csv.DictReader(handle)] == ["tiny-fp32", "tiny-int8"]
    assert "tiny-int8" in result.output and "wer_clean" in result.output


def test_bench_refuses_files_without_sidecar(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"")
    result = CliRunner().invoke(bench.main, [str(tmp_path / "model.onnx")])
    assert result.exit_code != 0 and "no sidecar" in result.output
