"""The results store, the report's figures (their plotted data), the Pareto front and the pick."""

import sqlite3
import threading

import pytest
from click.testing import CliRunner

from asr_engines.commands import bench, report
from asr_engines.measure.report import write_report
from asr_engines.measure.results import BenchRow
from asr_engines.measure.selection import filter_rows, latest, pareto_front, pick
from asr_engines.measure.store import StoreError, append_rows, load_rows


def make_row(engine="m-fp32", **changes) -> BenchRow:
    values = dict(
        engine=engine, model=engine.rsplit("-", 1)[0], backend="onnxruntime", precision=engine.rsplit("-", 1)[1],
        variant=engine.rsplit("-", 1)[1], device="cpu", threads=2, utterances=70, audio_s=328.3, wer_clean=5.0,
        wer_noisy=20.0, wer_noisy_std=1.0, wer_noisy_draws=[19.0, 21.0], noise="study", rtfx=20.0, latency_p50_ms=200,
        latency_p90_ms=300, latency_p99_ms=400, load_s=0.5, peak_rss_mb=500, system_mem_mb=400, gpu_mem_mb=None,
        energy_j=100.0, energy_net_j=80.0, baseline_w=2.0, mean_power_w=8.0, j_per_audio_s=0.24, j_per_utterance=1.1,
        energy_rails_j={"VDD_IN": 100.0}, energy_counter_j=None, energy_trapezoid_j=100.0, energy_reliable=True, energy_repeats=1,
        energy_note="",
        meter="ina3221", rail="VDD_IN", gpu_rail="VDD_CPU_GPU_CV", sample_hz=100.0, sensor_faults=0,
        run_id="run-1", device_id="orin", started_at="2026-11-26T10:00:00+00:00",
    )
    values.update(changes)
    return BenchRow(**values)


@pytest.fixture(scope="module")
def store_from_two_runs(tiny_engines, tmp_path_factory):
    """Two bench runs of the tiny engines on a fake Orin Nano: fp32 + int8, then fp16 + int8."""
    from stand_ins.sysfs import FakeBoard

    folder = tmp_path_factory.mktemp("store")
    FakeBoard(folder / "root", "orin-nano").set_power("VDD_IN", 7.5)
    for run, engines in enumerate((["tiny-fp32", "tiny-int8"], ["tiny-fp16", "tiny-int8"])):
        result = CliRunner().invoke(bench.command, [
            *(str(tiny_engines / f"{name}.json") for name in engines), "--limit", "2", "--noise-draws", "2",
            "--skip-noisy-above", "inf", "--meter", "ina3221", "--meter-root", str(folder / "root"), "--baseline-s", "0", "--threads", "1",
            "--out", str(folder / f"out-{run}"), "--store", str(folder / "store.sqlite"), "--no-progress",
        ])
        assert result.exit_code == 0, result.output
    return folder / "store.sqlite"


def test_store_keeps_every_run(store_from_two_runs):
    rows = load_rows(store_from_two_runs)
    assert [row.engine for row in rows] == ["tiny-fp32", "tiny-int8", "tiny-fp16", "tiny-int8"]
    assert len({row.run_id for row in rows}) == 2
    assert sorted(row.engine for row in latest(rows)) == ["tiny-fp16", "tiny-fp32", "tiny-int8"]
    assert latest(rows)[1].run_id == rows[3].run_id  # the newer int8 row wins


def test_report_figures_plot_the_stored_numbers(store_from_two_runs, tmp_path):
    rows = latest(load_rows(store_from_two_runs))
    written = write_report(rows, tmp_path, store_from_two_runs)
    assert all(figure.path.stat().st_size > 1000 for figure in written.values())
    wer = written["WER clean vs noisy (study Fig. 4)"].series
    assert wer["WER %|clean"] == pytest.approx([row.wer_clean for row in rows])
    assert wer["WER %|noisy"] == pytest.approx([row.wer_noisy for row in rows])
    energy = written["Energy per precision (study Fig. 5)"].series
    assert set(energy) == {"energy J|fp32", "energy J|fp16", "energy J|int8"} and all(len(v) == 1 for v in energy.values())
    by_precision = {row.precision: row.energy_j for row in rows}
    assert energy["energy J|int8"] == pytest.approx([by_precision["int8"]])
    speed = written["RTF and memory per precision (study Fig. 7)"].series
    assert speed["RTF|fp16"] == pytest.approx([1 / next(r.rtfx for r in rows if r.precision == "fp16")])
    points = written["WER vs energy (study Fig. 8)"].series["WER %|points"]
    expected = sorted((row.energy_j, row.wer_clean) for row in rows)
    assert len(points) == 3 and all(p == pytest.approx(e) for p, e in zip(sorted(points), expected))
    text = (tmp_path / "report.md").read_text()
    assert "tiny-fp16" in text and "ina3221" in text and "VDD_IN (VDD_CPU_GPU_CV)" in text and "Pareto front" in text
    assert "wer_vs_energy.png" in text


def test_pareto_front_and_pick_on_hand_made_rows():
    rows = [
        make_row("big-fp32", wer_clean=3.0, energy_net_j=300.0, peak_rss_mb=3000),
        make_row("big-int8", wer_clean=3.4, energy_net_j=120.0, peak_rss_mb=1500),
        make_row("small-fp16", wer_clean=9.0, energy_net_j=40.0, peak_rss_mb=600),
        make_row("small-fp32", wer_clean=9.0, energy_net_j=80.0, peak_rss_mb=700),  # beaten by small-fp16
        make_row("mid-fp16", wer_clean=6.0, energy_net_j=None, energy_j=None, peak_rss_mb=900),
    ]
    assert [row.engine for row in pareto_front(rows)] == ["big-fp32", "big-int8", "small-fp16", "mid-fp16"]
    choice = pick(rows, max_wer=8, max_memory_mb=2000)
    assert choice.chosen.engine == "big-int8"
    assert choice.reasons == {
        "big-fp32": "memory 3000 MB > 2000 MB",
        "small-fp16": "clean WER 9.00 % > 8 %",
        "small-fp32": "clean WER 9.00 % > 8 %",
        "mid-fp16": "fits, but no energy was measured (ina3221)",
    }
    noisy = pick(rows, max_wer=15, noisy=True)
    assert noisy.chosen is None and noisy.reasons["small-fp16"] == "noisy WER 20.00 % > 15 %"


def test_filters():
    rows = [make_row("a-fp32"), make_row("a-int8", wer_clean=7.5), make_row("b-fp16", device_id="nano")]
    assert [r.engine for r in filter_rows(rows, ["precision=int8"])] == ["a-int8"]
    assert [r.engine for r in filter_rows(rows, ["wer_clean<6", "device_id~ori"])] == ["a-fp32"]
    with pytest.raises(ValueError, match="no field 'colour'"):
        filter_rows(rows, ["colour=red"])


def test_pick_from_the_command_line(tmp_path):
    store = tmp_path / "s.sqlite"
    append_rows([make_row("a-fp32", energy_net_j=90.0), make_row("a-int8", energy_net_j=50.0, wer_clean=5.5)], store)
    result = CliRunner().invoke(report.command, ["--store", str(store), "--pick", "--max-wer", "8", "--max-memory-mb", "2000"])
    assert result.exit_code == 0 and "pick: a-int8" in result.output
    assert "a-fp32: fits, but 90.00 J > 50.00 J of a-int8" in result.output


def test_rows_are_never_overwritten_and_concurrent_appends_all_land(tmp_path):
    store = tmp_path / "s.sqlite"
    append_rows([make_row()], store)
    with pytest.raises(StoreError, match="stored already"):
        append_rows([make_row()], store)
    threads = [threading.Thread(target=lambda n=n: [append_rows([make_row(run_id=f"r{n}-{i}")], store) for i in range(10)])
               for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(load_rows(store)) == 41


def test_corrupt_and_locked_stores_say_so(tmp_path):
    corrupt = tmp_path / "corrupt.sqlite"
    corrupt.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a readable results store"):
        load_rows(corrupt)
    store = tmp_path / "locked.sqlite"
    append_rows([make_row()], store)
    holder = sqlite3.connect(str(store))
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreError, match="locked by another process"):
            append_rows([make_row(run_id="run-2")], store, timeout_s=0.1, retry_for_s=0.5)
    finally:
        holder.rollback()
        holder.close()
    result = CliRunner().invoke(report.command, ["--store", str(tmp_path / "missing.sqlite")])
    assert result.exit_code != 0 and "no results store here" in result.output


def test_a_store_locked_for_a_while_is_waited_for(tmp_path):
    store = tmp_path / "busy.sqlite"
    append_rows([make_row()], store)
    holder = sqlite3.connect(str(store), check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    release = threading.Timer(1.0, lambda: (holder.rollback(), holder.close()))
    release.start()
    append_rows([make_row(run_id="run-2")], store, timeout_s=0.1, retry_for_s=10)  # backs off until the lock goes
    release.join()
    assert [row.run_id for row in load_rows(store)] == ["run-1", "run-2"]


def test_the_bench_says_last_when_rows_did_not_reach_the_store(tiny_engines, tmp_path):
    corrupt = tmp_path / "corrupt.sqlite"
    corrupt.write_bytes(b"this is not sqlite" * 100)
    result = CliRunner().invoke(bench.command, [
        str(tiny_engines / "tiny-int8.json"), "--limit", "1", "--noise", "none", "--meter", "none", "--baseline-s", "0",
        "--threads", "1", "--out", str(tmp_path / "out"), "--store", str(corrupt), "--no-progress"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1].startswith(f"bench: NOT stored in {corrupt}: tiny-int8")
    assert (tmp_path / "out" / "results.json").is_file() and "appended to" not in result.output


def test_pick_without_any_energy_chooses_on_what_was_measured():
    rows = [make_row("a-fp32", energy_j=None, energy_net_j=None, rtfx=20.0, energy_note="no power meter"),
            make_row("a-int8", energy_j=None, energy_net_j=None, rtfx=35.0, wer_clean=5.3, energy_note="no power meter"),
            make_row("b-fp16", energy_j=None, energy_net_j=None, rtfx=50.0, wer_clean=12.0)]
    choice = pick(rows, max_wer=8)
    assert choice.chosen.engine == "a-int8" and "energy was not measured" in choice.basis
    assert choice.reasons == {"a-fp32": "fits, but RTFx 20.0 < 35.0 of a-int8", "b-fp16": "clean WER 12.00 % > 8 %"}
    result_rows = [make_row("m-fp32", energy_j=None, energy_net_j=None)]
    assert pick(result_rows).chosen.engine == "m-fp32"


def test_an_unmeasured_row_never_pushes_a_measured_one_off_the_front():
    measured = make_row("m-fp32", wer_clean=5.0, energy_net_j=80.0, peak_rss_mb=900)
    unmeasured = make_row("u-int8", wer_clean=4.0, energy_j=None, energy_net_j=None, peak_rss_mb=500)  # better on both others
    assert [row.engine for row in pareto_front([measured, unmeasured])] == ["m-fp32", "u-int8"]
    worse = make_row("w-fp16", wer_clean=6.0, energy_j=None, energy_net_j=None, peak_rss_mb=950)
    assert [row.engine for row in pareto_front([measured, worse])] == ["m-fp32"]  # measured rows still beat unmeasured ones


def test_memory_picks_use_the_engines_own_process_never_a_contaminated_system_figure():
    from asr_engines.measure.selection import memory_doubt, memory_mb

    busy_machine = make_row("c-fp32", device="cpu", peak_rss_mb=940, system_mem_mb=19341,
                            system_mem_note="contaminated: other processes' memory rose by 18400 MB during the run")
    assert memory_mb(busy_machine) == 940 and memory_doubt(busy_machine) == ""
    jetson_root = make_row("j-fp16", device="cuda:0 Orin", backend="tensorrt", peak_rss_mb=600, gpu_mem_mb=700, system_mem_mb=5000)
    assert memory_mb(jetson_root) == 1300
    jetson_clean = make_row("k-fp16", device="cuda:0 Orin", backend="tensorrt", peak_rss_mb=600, gpu_mem_mb=None, system_mem_mb=1400)
    assert memory_mb(jetson_clean) == 1400  # the clean system figure carries the GPU's share
    jetson_busy = make_row("l-fp16", device="cuda:0 Orin", backend="tensorrt", peak_rss_mb=600, gpu_mem_mb=None,
                           system_mem_mb=9000, system_mem_note="contaminated: used memory moved +3000 MB")
    assert memory_mb(jetson_busy) == 600 and "GPU memory is not in the figure" in memory_doubt(jetson_busy)
    choice = pick([busy_machine, jetson_busy], max_wer=10, max_memory_mb=2000)
    assert choice.chosen.engine == "c-fp32"
    assert choice.reasons["l-fp16"].startswith("memory cannot be judged: its GPU memory is not in the figure")


def test_report_says_each_no_meter_reason_once_and_shows_missing_energy_as_such(tmp_path):
    reason = "no power source found (ina3221: no INA3221 under /sys/bus/i2c/devices; nvml: NVML Shared Library Not Found; " \
             "rapl: no RAPL zones under /sys/class/powercap)"
    rows = [make_row(f"m-{variant}", variant=variant, precision=variant.split("-")[0], energy_j=None, energy_net_j=None,
                     energy_note=reason, meter="none") for variant in ("fp32", "int8", "int8-qdq")]
    written = write_report(rows, tmp_path, tmp_path / "s.sqlite")
    text = (tmp_path / "report.md").read_text()
    assert text.count(reason) == 1 and text.count("not measured (1)") == 3
    energy = written["Energy per precision (study Fig. 5)"]
    assert energy.series == {} and energy.path.stat().st_size > 1000  # no empty axes: the figure says why
    speed = written["RTF and memory per precision (study Fig. 7)"].series
    assert {"RTF|int8", "RTF|int8-qdq"} <= set(speed)  # one bar per variant, int8 and int8-qdq apart


def test_the_report_says_what_each_build_decided_by_measurement(tmp_path):
    """The int8 budget's last round and Whisper's trim margin, with the costs the build measured (WER points)."""
    budget = {"wer_points": 0.5, "met": True, "note": "", "rounds": [{"cost_clean": 0.2, "cost_noisy": 0.41}]}
    rows = [
        make_row("w-int8", extra={"int8_budget": budget, "decoding": {"trim_decided": {
            "judged": True, "margin_s": 16.0, "cost_clean": -0.1, "cost_noisy": 0.3}}}),
        make_row("w-fp32", extra={"int8_budget": None, "decoding": {"trim_decided": {
            "judged": True, "margin_s": None, "cost_clean": 0.0, "cost_noisy": 0.0}}}),
        make_row("r-fp32", extra={"decoding": {"trim_decided": {"judged": False, "note": "not judged: fp32 reads 100.0 %"}}}),
        make_row("c-int8", extra={"int8_budget": {**budget, "met": False, "rounds": [{"cost_clean": 0.9, "cost_noisy": 2.5}]}}),
    ]
    write_report(rows, tmp_path, tmp_path / "store.sqlite")
    text = (tmp_path / "report.md").read_text()
    assert "int8 budget 0.5: met +0.20/+0.41; trim 16 s -0.10/+0.30 |" in text
    assert "| trim whole window +0.00/+0.00 |" in text and "| trim not judged: fp32 reads 100.0 % |" in text
    assert "int8 budget 0.5: not met +0.90/+2.50 |" in text


def test_the_cpu_int8_encoder_form_and_its_costs_are_shown_by_report_and_bench(tmp_path):
    """The forms the CPU int8 engine's build tried (encoder int8, else fp32), each with its measured cost, in the
    report's column and below the bench's table; an unmeasured build says so."""
    from asr_engines.measure.bench import format_table

    forms = {"kept": {"encoder": "fp32"}, "judged": True, "tried": [
        {"forms": {"encoder": "int8-dynamic"}, "judged": True, "within": False, "cost_clean": 0.3, "cost_noisy": 0.84,
         "tried": {"8": {"cost_clean": 0.1, "cost_noisy": 0.7}, "16": {"cost_clean": 0.3, "cost_noisy": 0.84}}},
        {"forms": {"encoder": "fp32"}, "judged": True, "within": True, "cost_clean": -0.2, "cost_noisy": 0.45,
         "tried": {"8": {"cost_clean": -0.2, "cost_noisy": 0.45}}}]}
    trim = {"judged": True, "margin_s": 8.0, "cost_clean": -0.2, "cost_noisy": 0.45}
    rows = [make_row("w-int8", extra={"int8_forms": forms, "decoding": {"trim_decided": trim}}),
            make_row("m-int8", extra={"int8_forms": {"kept": {"encoder": "fp32"}, "judged": False, "tried": [],
                                                     "note": "not measured"}}),
            make_row("n-int8", extra={"int8_forms": {"kept": {"encoder": "int8-dynamic"}, "judged": True, "tried": [
                {"forms": {"encoder": "int8-dynamic"}, "judged": True, "within": True, "cost_clean": 0.0, "cost_noisy": -1.27,
                 "tried": {"as built": {"cost_clean": 0.0, "cost_noisy": -1.27}}}]}})]
    said = "encoder fp32 (tried int8-dynamic 8 s +0.10/+0.70, 16 s +0.30/+0.84, fp32 8 s -0.20/+0.45); trim 8 s -0.20/+0.45"
    write_report(rows, tmp_path, tmp_path / "store.sqlite")
    assert f"| {said} |" in (tmp_path / "report.md").read_text()
    table = format_table(rows)
    assert f"w-int8: {said}" in table and "m-int8: encoder fp32: not measured" in table
    assert "n-int8: encoder int8-dynamic (tried int8-dynamic +0.00/-1.27)" in table
