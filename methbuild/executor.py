"""Run one CPU-bound function over many items: a local process pool, or a Dask cluster.

Every heavy command (render, decode, resize, encode) goes through :func:`run_tasks` /
:func:`iter_tasks`: the task function is a plain module-level function of one item, so the
same function runs inline, in a local process pool, or on Dask distributed workers. Failures
are returned as values, never raised out of the loop, so one bad item cannot stop a batch; a
bound on the tasks in flight keeps memory flat however many items there are.

The engine is chosen once per command: by default the local pool; inside
``with use_scheduler("tcp://HOST:PORT")`` (or ``"local:N"`` for a ``LocalCluster`` of N
single-threaded worker processes on 127.0.0.1) every call goes to that Dask cluster. Outputs
do not depend on the engine: items are seeded by their own keys, never by where they ran.
A worker that dies mid-task has its tasks rerun elsewhere by the scheduler.

Faults that are not the item's: a full disk (``ENOSPC``/``EDQUOT``) raised by a task stops the whole
run and is re-raised in the calling process (every further item would fail the same way; the CLI
turns it into one line). Ctrl-C / SIGTERM in the calling process cancels the queued items and
terminates the local workers at once (their writes are atomic, so a killed task leaves at most a
temporary file); local workers ignore SIGINT, so a Ctrl-C in a terminal is handled once, by the caller.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from tqdm import tqdm

from methbuild.errors import DISK_FULL, UserError

MAX_LOCAL_WORKERS = 512  # `--scheduler local:N`: at most this many worker processes (as --workers)


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
    active = _ACTIVE.get("client")
    if active is not None:
        return max(1, len(active.scheduler_info().get("workers", {})) or 1)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


_WORKER_READY = False


def _init_worker() -> None:
    # One worker = one core: keep OpenCV and BLAS from spawning threads that fight the pool.
    global _WORKER_READY
    _WORKER_READY = True
    # Only if the task module loaded OpenCV (importing it costs ~0.2 s per worker otherwise).
    cv2 = sys.modules.get("cv2")
    if cv2 is not None:
        cv2.setNumThreads(1)


def _init_pool_worker() -> None:
    # A Ctrl-C in a terminal reaches the whole process group: the calling process handles it (and
    # terminates this worker); a KeyboardInterrupt here would only print a traceback per worker.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _init_worker()


def _call(fn: Callable[[Any], Any], index: int, item: Any) -> TaskResult:
    if not _WORKER_READY:  # a Dask worker process: no pool initializer ran there
        _init_worker()
    try:
        return TaskResult(index, item, fn(item))
    except OSError as exc:
        if exc.errno in DISK_FULL:  # not this item's fault: stop the run (re-raised by the caller's loop)
            raise
        return TaskResult(index, item, error=f"{type(exc).__name__}: {exc}")
    except Exception as exc:  # collected per item, reported by the caller
        return TaskResult(index, item, error=f"{type(exc).__name__}: {exc}")


# ----------------------------------------------------------------------------- Dask

_ACTIVE: dict[str, Any] = {}
CONNECT_TIMEOUT_S = 5


def _connect(scheduler: str):
    """A ``distributed.Client`` for ``tcp://HOST:PORT`` or ``local:N``; a UserError when it cannot."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise UserError("--scheduler needs Dask: pip install 'methbuild[distributed]'") from None
    import dask

    if scheduler.startswith("local:"):
        n = _local_workers(scheduler)
        # One single-threaded worker process per core, like the local pool; no dashboard port.
        with dask.config.set({"distributed.worker.daemon": False, "logging.distributed": "error"}):
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                                   dashboard_address=None, silence_logs=40)
        return Client(cluster), cluster
    _check_address(scheduler)
    try:
        with dask.config.set({"distributed.comm.timeouts.connect": f"{CONNECT_TIMEOUT_S}s"}):
            client = Client(scheduler, timeout=f"{CONNECT_TIMEOUT_S}s")
    except (OSError, TimeoutError) as exc:
        raise UserError(f"cannot reach the Dask scheduler at {scheduler} within {CONNECT_TIMEOUT_S} s: {exc}") from None
    return client, None


def _local_workers(scheduler: str) -> int:
    """N of ``local:N``, checked: 1 ≤ N ≤ MAX_LOCAL_WORKERS."""
    text = scheduler.split(":", 1)[1].strip()
    n = int(text) if text.isascii() and text.isdigit() and len(text) <= 6 else 0
    if not 1 <= n <= MAX_LOCAL_WORKERS:
        raise UserError(f"--scheduler {scheduler!r}: write local:N with 1 <= N <= {MAX_LOCAL_WORKERS} workers")
    return n


def _check_address(scheduler: str) -> None:
    """A scheduler address must be tcp:// or tls:// with a host and a port in 1..65535."""
    from urllib.parse import urlsplit

    expected = f"--scheduler {scheduler!r}: expected tcp://HOST:PORT (e.g. tcp://10.0.0.5:8786) or local:N"
    if not scheduler.startswith(("tcp://", "tls://")):
        raise UserError(expected)
    parts = urlsplit(scheduler)
    try:
        port = parts.port
    except ValueError:  # not a number, or outside 0..65535
        port = None
    if not parts.hostname or port is None or port == 0:
        raise UserError(f"{expected}; the address needs a host and a port in 1..65535")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
        raise UserError(f"{expected}; nothing may follow the port")


@contextlib.contextmanager
def use_scheduler(scheduler: str | None) -> Iterator[Any]:
    """Within this block every :func:`run_tasks` / :func:`iter_tasks` runs on ``scheduler``.

    ``None`` keeps the local process pool. Yields the Dask client (or None).
    """
    if not scheduler:
        yield None
        return
    client, cluster = _connect(scheduler)
    _ACTIVE["client"] = client
    try:
        yield client
    finally:
        _ACTIVE.pop("client", None)
        client.close()
        if cluster is not None:
            cluster.close()


def active_client():
    """The Dask client of the enclosing :func:`use_scheduler`, or None."""
    return _ACTIVE.get("client")


def _iter_dask(client, fn: Callable[[Any], Any], items: Iterable[Any], limit: int) -> Iterator[TaskResult]:
    from dask.distributed import as_completed

    pending = as_completed()
    n_pending = 0
    for i, item in enumerate(items):
        # pure=False: never deduplicate two items that happen to look alike
        pending.add(client.submit(_call, fn, i, item, pure=False, retries=2))
        n_pending += 1
        if n_pending >= limit:
            fut = next(pending)
            n_pending -= 1
            yield _dask_result(fut, i)
    for fut in pending:
        yield _dask_result(fut, -1)


def _dask_result(fut, index: int) -> TaskResult:
    try:
        return fut.result()
    except OSError as exc:
        if exc.errno in DISK_FULL:  # raised on purpose by _call: a full disk stops the run
            raise
        raise RuntimeError(f"Dask task failed: {type(exc).__name__}: {exc}") from exc
    except Exception as exc:  # the task itself never raises otherwise (_call catches): this is the cluster failing
        raise RuntimeError(f"Dask task failed: {type(exc).__name__}: {exc}") from exc
    finally:
        fut.release()


# ----------------------------------------------------------------------------- the interface


def iter_tasks(
    fn: Callable[[Any], Any],
    items: Iterable[Any],
    *,
    workers: int | None = None,
    max_in_flight: int | None = None,
) -> Iterator[TaskResult]:
    """Yield a :class:`TaskResult` per item as it completes (not in input order)."""
    client = active_client()
    if client is not None:
        yield from _iter_dask(client, fn, items, max_in_flight or default_workers() * 4)
        return
    workers = workers or default_workers()
    if workers <= 1:
        _init_worker()
        for i, item in enumerate(items):
            yield _call(fn, i, item)
        return
    limit = max_in_flight or workers * 4
    ctx = multiprocessing.get_context("forkserver")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_pool_worker)
    try:
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
    except BaseException:  # Ctrl-C, SIGTERM, a full disk, or the caller closing the generator early
        _stop_pool(pool)
        raise
    pool.shutdown(wait=True)


def _stop_pool(pool: ProcessPoolExecutor) -> None:
    """Drop the queued items and end the workers now, not after the tasks in flight (they write atomically)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())  # Python < 3.14 has no terminate_workers()
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        with contextlib.suppress(OSError, ValueError):
            proc.terminate()
    for proc in processes:
        with contextlib.suppress(OSError, ValueError, AssertionError):
            proc.join(timeout=10)


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
