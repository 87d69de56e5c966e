"""`BatchPlan`: batches of image indices from a bucket plan, for any training framework.

Framework-free (numpy and the standard library only): iterate it for lists of row indices of
PLAN.csv, one batch per step, every batch drawn from one bucket (one padded shape) and no bigger
than that bucket's batch size. Each epoch every image appears exactly once; the order is a pure
function of (seed, epoch): images are shuffled within their bucket, cut into batches, and the
batches of all buckets shuffled together.

PyTorch::

    plan = BatchPlan.load("plan")                    # plan.csv + plan.json
    loader = DataLoader(dataset, batch_sampler=plan, collate_fn=pad_to_batch)
    for epoch in range(E):
        plan.set_epoch(epoch)
        ...

TensorFlow: ``tf.data.Dataset.from_generator(lambda: iter(plan), ...)`` then map indices to images.
With several processes (data parallel), give each its ``rank`` and ``world_size``: each gets every
``world_size``-th batch of the same shuffled order (together they cover the epoch exactly once).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

SPAWN_KEY = 88  # SeedSequence spawn key of the batch order: (SPAWN_KEY, epoch)


class BatchPlan:
    """Batches of indices, one bucket each, reshuffled per epoch with a seed (see the module notes)."""

    def __init__(self, bucket_of: Sequence[int], batch_sizes: Sequence[int] | dict[int, int], *, seed: int = 0,
                 shuffle: bool = True, drop_last: bool = False, rank: int = 0, world_size: int = 1,
                 paths: Sequence[str] | None = None, padded_shapes: dict[int, tuple[int, int]] | None = None):
        self.bucket_of = np.asarray(bucket_of, dtype=np.int64)
        if self.bucket_of.ndim != 1:
            raise ValueError("bucket_of must be one bucket id per image")
        if isinstance(batch_sizes, dict):
            sizes = dict(batch_sizes)
        else:
            sizes = dict(enumerate(batch_sizes))
        present = np.unique(self.bucket_of)
        missing = [int(b) for b in present if int(b) not in sizes]
        if missing:
            raise ValueError(f"no batch size for bucket(s) {missing}")
        bad = {b: s for b, s in sizes.items() if int(s) < 1}
        if bad:
            raise ValueError(f"batch sizes must be at least 1: {bad}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError("need 0 <= rank < world_size")
        self.batch_sizes = {int(b): int(s) for b, s in sizes.items()}
        self.seed, self.shuffle, self.drop_last = int(seed), bool(shuffle), bool(drop_last)
        self.rank, self.world_size = int(rank), int(world_size)
        self.paths = list(paths) if paths is not None else None
        self.padded_shapes = dict(padded_shapes or {})
        self.epoch = 0
        # Members of each bucket, in PLAN.csv order (stable): the unshuffled layout.
        order = np.argsort(self.bucket_of, kind="stable")
        ids, starts = np.unique(self.bucket_of[order], return_index=True)
        self._members = {int(b): order[s:e] for b, s, e in zip(ids, starts, np.append(starts[1:], order.size))}

    # --- loading ------------------------------------------------------------------------------------------------

    @classmethod
    def load(cls, plan: str | os.PathLike, **kwargs) -> BatchPlan:
        """Read a plan written by ``methbuild buckets`` (its prefix, or its .csv or .json path).

        ``seed`` defaults to the plan's seed; other keyword arguments as the constructor.
        """
        plan = Path(plan)
        prefix = plan.with_suffix("") if plan.suffix in (".csv", ".json") else plan
        csv_path, json_path = Path(f"{prefix}.csv"), Path(f"{prefix}.json")
        with open(json_path, encoding="utf-8") as fh:
            meta = json.load(fh)
        sizes = {int(b["id"]): int(b["batch_size"]) for b in meta["buckets"]}
        shapes = {int(b["id"]): (int(b["padded_height"]), int(b["padded_width"])) for b in meta["buckets"]}
        with open(csv_path, encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            buckets, paths = [], []
            for row in reader:
                buckets.append(int(row["bucket"]))
                paths.append(row["path"])
        expected = meta.get("csv", {}).get("rows")
        if expected is not None and expected != len(buckets):
            raise ValueError(f"{csv_path} has {len(buckets)} rows but {json_path} describes {expected}: "
                             "the two files are from different runs; rerun methbuild buckets")
        kwargs.setdefault("seed", int(meta.get("settings", {}).get("seed", 0)))
        return cls(buckets, sizes, paths=paths, padded_shapes=shapes, **kwargs)

    # --- the sampler protocol -----------------------------------------------------------------------------------

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order the next iteration yields (as PyTorch's samplers)."""
        self.epoch = int(epoch)

    def batches(self, epoch: int | None = None) -> list[tuple[int, np.ndarray]]:
        """The epoch's batches as ``(bucket id, indices)``, in order, for this rank."""
        e = self.epoch if epoch is None else int(epoch)
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(SPAWN_KEY, e)))
        out: list[tuple[int, np.ndarray]] = []
        for b in sorted(self._members):
            members = self._members[b]
            if self.shuffle:
                members = members[rng.permutation(members.size)]
            size = self.batch_sizes[b]
            for s in range(0, members.size, size):
                chunk = members[s:s + size]
                if self.drop_last and chunk.size < size:
                    continue
                out.append((b, chunk))
        if self.shuffle:
            out = [out[i] for i in rng.permutation(len(out))]
        return out[self.rank::self.world_size]

    def __iter__(self) -> Iterator[list[int]]:
        for _, idx in self.batches():
            yield idx.tolist()

    def __len__(self) -> int:
        n = 0
        for b, members in self._members.items():
            size = self.batch_sizes[b]
            n += members.size // size if self.drop_last else -(-members.size // size)
        # this rank's share of the round-robin split
        return n // self.world_size + (1 if self.rank < n % self.world_size else 0)

    def padded_shape(self, bucket: int) -> tuple[int, int]:
        """(height, width) every image of ``bucket`` is padded to (plans loaded from files)."""
        return self.padded_shapes[int(bucket)]

    def __repr__(self) -> str:
        return (f"BatchPlan({self.bucket_of.size} images, {len(self._members)} buckets, {len(self)} batches, "
                f"seed={self.seed}, epoch={self.epoch})")
