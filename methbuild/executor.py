"""Run one CPU-bound function over many items, in a local process pool.

Every heavy command (render, decode, resize, encode) goes through :func:`run_tasks`:
the task function is a plain module-level function of one item, so the same function runs
inline, in a process pool, or (later) on a distributed cluster. Failures are returned as
values, never raised out of the loop, so one bad item cannot stop a batch; a bound on the
tasks in flight keeps memory flat however many items there are.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from tqdm import tqdm


@dataclass(frozen=True)
class TaskResult:
    """What happened to one item: its position, the function's value, or the error text."""

    index: int
    item: Any
    value: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def default_workers() -> int:
    """CPUs this process may use (respects affinity masks and container limits)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _call(fn: Callable[[Any], Any], index: int, item: Any) -> TaskResult:
    try:
        return TaskResult(index, item, fn(item))
    except Exception as exc:  # collected per item, reported by the caller
        return TaskResult(index, item, error=f"{type(exc).__name__}: {exc}")


def _init_worker() -> None:
    # One worker = one core: keep OpenCV and BLAS from spawning threads that fight the pool.
    try:
        import cv2

        cv2.setNumThreads(1)
    except Exception:  # pragma: no cover - cv2 always present, but a pool must not die of it
        pass


def iter_tasks(
    fn: Callable[[Any], Any],
    items: Iterable[Any],
    *,
    workers: int | None = None,
    max_in_flight: int | None = None,
) -> Iterator[TaskResult]:
    """Yield a :class:`TaskResult` per item as it completes (not in input order)."""
    workers = workers or default_workers()
    if workers <= 1:
        _init_worker()
        for i, item in enumerate(items):
            yield _call(fn, i, item)
        return
    limit = max_in_flight or workers * 4
    ctx = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker) as pool:
        pending: set[Future] = set()
        for i, item in enumerate(items):
            pending.add(pool.submit(_call, fn, i, item))
            if len(pending) >= limit:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    yield fut.result()
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                yield fut.result()


def run_tasks(
    fn: Callable[[Any], Any],
    items: list[Any],
    *,
    workers: int | None = None,
    desc: str = "",
    unit: str = "item",
    progress: bool = True,
) -> list[TaskResult]:
    """Run ``fn`` on every item; return results in input order, with a progress bar."""
    results: list[TaskResult | None] = [None] * len(items)
    with tqdm(total=len(items), desc=desc, unit=unit, disable=not progress or None, dynamic_ncols=True) as bar:
        for res in iter_tasks(fn, items, workers=workers):
            results[res.index] = res
            bar.update(1)
    return results  # type: ignore[return-value]
