"""The benchmarks' engine caches are reused only while the code that makes engines is unchanged."""

from __future__ import annotations

from benchmarks import engine_cache as bench_cache


def test_the_hash_follows_the_engine_stages_and_nothing_else(tmp_path, monkeypatch):
    for path in ("engines/quantize.py", "export/models.py", "runtime/whisper.py", "measure/report.py",
                 *bench_cache.BUILD_MEASUREMENTS):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("x = 1\n")
    monkeypatch.setattr(bench_cache, "ROOT", tmp_path)
    before = bench_cache.code_hash()
    (tmp_path / "runtime/whisper.py").write_text("x = 2\n")
    (tmp_path / "measure/report.py").write_text("x = 2\n")
    assert bench_cache.code_hash() == before  # neither the runtime nor the report makes engines
    (tmp_path / "measure/choices.py").write_text("x = 2\n")
    assert bench_cache.code_hash() != before  # the build keeps what this measures
    before = bench_cache.code_hash()
    (tmp_path / "engines/quantize.py").write_text("x = 2\n")
    assert bench_cache.code_hash() != before


def test_a_cache_is_kept_while_current_and_emptied_once_the_code_changes(tmp_path, monkeypatch):
    monkeypatch.setattr(bench_cache, "code_hash", lambda: "first")
    folder = bench_cache.cache_for(tmp_path / "bench")
    (folder / "engine.onnx").write_text("built")
    assert bench_cache.cache_for(folder) == folder and (folder / "engine.onnx").is_file()
    monkeypatch.setattr(bench_cache, "code_hash", lambda: "second")
    assert not bench_cache.is_current(folder)
    bench_cache.cache_for(folder)
    assert not (folder / "engine.onnx").exists() and bench_cache.is_current(folder)
