"""The crawl on a Dask cluster: shards of objects on the workers, one state writer here.

The object IDs to crawl are cut into small shards. Each shard runs on a worker as an ordinary
:class:`~methbuild.met.crawl.Crawler` whose state is a :class:`JournalState`: instead of writing
SQLite it records every state change, and the journal comes back with the task's result. This
process replays the journals into ``crawl.sqlite`` as shards finish, so the state still has
exactly one writer. Images go straight from the workers to ``DIR/images/`` (a path every worker
reaches), by the same temp-name/fsync/rename as a local crawl.

Politeness stays global: at most W shards run at once (W = the cluster's worker threads), each
with 1/W of the per-host request rates and of the concurrency. A worker killed mid-shard loses
nothing that was recorded: its shard is rerun elsewhere, and images it had already renamed into
place are adopted (hash and header checked) instead of fetched again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from methbuild.executor import active_client, iter_tasks
from methbuild.met.state import disk_full_as_oserror

SHARD_MIN = 8


class JournalState:
    """The part of :class:`~methbuild.met.state.CrawlState` a crawler uses, recording instead of writing."""

    def __init__(self, records: dict[int, dict], announced: dict[int, int] | None = None) -> None:
        self._records = records
        self._announced = dict(announced or {})
        self.journal: list[tuple] = []

    def record(self, object_id: int, check=None) -> dict | None:
        rec = self._records.get(object_id)
        return None if rec is None or (check is not None and check(rec, object_id) is not None) else rec

    def announced(self, object_id: int) -> int | None:
        return self._announced.get(object_id)

    def note_announced(self, object_id: int, nbytes: int | None) -> None:
        self._announced[object_id] = nbytes
        self.journal.append(("note_announced", object_id, (nbytes,), {}))

    def save_record(self, object_id: int, record: dict) -> None:
        self._records[object_id] = record
        self.journal.append(("save_record", object_id, (record,), {}))

    def finish(self, object_id: int, status: str, **kwargs) -> None:
        self.journal.append(("finish", object_id, (status,), kwargs))

    def note_attempt(self, object_id: int, error: str | None, **kwargs) -> None:
        self.journal.append(("note_attempt", object_id, (error,), kwargs))


@dataclass(frozen=True)
class Shard:
    ids: tuple[int, ...]
    records: dict  # object ID → record already fetched in an earlier run
    out: str
    crawler_args: dict
    announced: dict  # object ID → image length announced in an earlier run (what may be adopted)


def crawl_shard(shard: Shard) -> dict:
    """Crawl one shard on a worker; return its journal and counters."""
    from methbuild.met.crawl import Crawler

    crawler = Crawler(Path(shard.out), **shard.crawler_args, progress=False)
    state = JournalState(dict(shard.records), shard.announced)
    crawler.state = state  # type: ignore[assignment]
    asyncio.run(crawler.run(list(shard.ids)))
    r = crawler.report
    return {"journal": state.journal, "downloaded_now": r.downloaded_now, "adopted": r.adopted,
            "retries": r.retries, "bytes_now": r.bytes_now, "errors": dict(r.errors)}


def cluster_threads() -> int:
    client = active_client()
    workers = client.scheduler_info().get("workers", {}) if client is not None else {}
    return max(1, sum(int(w.get("nthreads", 1)) for w in workers.values()))


def shard_args(crawler_args: dict, n: int) -> dict:
    """Each of ``n`` shards running at once gets 1/n of the rates and of the concurrency."""
    args = dict(crawler_args)
    args["api_rate"] = crawler_args["api_rate"] / n
    args["image_rate"] = crawler_args["image_rate"] / n
    args["concurrency"] = max(1, crawler_args["concurrency"] // n)
    return args


def run_on_dask(todo: Sequence[int], state, out: Path, crawler_args: dict, report, progress: bool) -> None:
    """Crawl ``todo`` on the active Dask cluster, replaying every shard's journal into ``state``."""
    from methbuild.met.crawl import record_problem

    n = cluster_threads()
    args = shard_args(crawler_args, n)
    size = max(SHARD_MIN, args["concurrency"] * 4)
    shards_ids = [tuple(todo[i:i + size]) for i in range(0, len(todo), size)]

    def shards():
        for ids in shards_ids:
            records = {oid: rec for oid in ids if (rec := state.record(oid, record_problem)) is not None}
            announced = {oid: n for oid in ids if (n := state.announced(oid)) is not None}
            yield Shard(ids, records, str(out), args, announced)

    with tqdm(total=len(todo), desc=f"crawl on {n} Dask worker(s)", unit="obj", disable=not progress or None,
              dynamic_ncols=True) as bar:
        for res in iter_tasks(crawl_shard, shards(), max_in_flight=n):
            if not res.ok:  # the shard's code failed (not a transient fault): its objects stay unfinished
                report.errors["shard_failed"] = report.errors.get("shard_failed", 0) + 1
                bar.update(len(res.item.ids))
                continue
            v = res.value
            with disk_full_as_oserror(state.path), state.db:  # one transaction per shard
                state.db.execute("BEGIN")
                for method, oid, pos, kw in v["journal"]:
                    getattr(state, method)(oid, *pos, **kw)
            report.downloaded_now += v["downloaded_now"]
            report.adopted += v["adopted"]
            report.retries += v["retries"]
            report.bytes_now += v["bytes_now"]
            for k, c in v["errors"].items():
                report.errors[k] = report.errors.get(k, 0) + c
            bar.update(len(res.item.ids))
