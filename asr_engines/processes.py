"""Run one call in a fresh process: whatever it allocates (TensorRT's builder, an engine under test) goes
back to the OS when it returns, and its load time and memory peak are its own. The child dies with its parent
(Linux): a bench or build that is killed leaves no process holding an engine."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

Result = TypeVar("Result")
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def in_fresh_process(function: Callable[..., Result], *arguments) -> Result:
    """`function(*arguments)` in a newly spawned interpreter (module-level function, picklable arguments)."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_die_with_parent, initargs=(os.getpid(),)) as pool:
        return pool.submit(function, *arguments).result()


def _die_with_parent(parent: int) -> None:
    """In the child: ask the kernel for SIGTERM when the parent dies; if it already has, go now."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        os._exit(1)
