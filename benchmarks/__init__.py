"""Benchmarks: each module prints a table, ours beside the peer's in one run (`python -m benchmarks.ctc_cpu`).
Their engines live in .cache/bench-* (engine_cache.py); docs/results/ holds what each measured."""
