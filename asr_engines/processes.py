"""Run one call in a fresh process: whatever it allocates (TensorRT's builder, an engine under test) goes
back to the OS when it returns, and its load time and memory peak are its own."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

Result = TypeVar("Result")


def in_fresh_process(function: Callable[..., Result], *arguments) -> Result:
    """`function(*arguments)` in a newly spawned interpreter (module-level function, picklable arguments)."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(function, *arguments).result()
