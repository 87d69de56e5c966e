"""`BatchPlan`: batches of image indices from a bucket plan, for any training framework.

Framework-free (numpy and the standard library only): iterate it for lists of row indices of
PLAN.csv, one batch per step, every batch drawn from one bucket (one padded shape) and no bigger
than that bucket's batch size. The order is a pure function of (plan, seed, epoch, world size).

**One schedule shared by all ranks.** An epoch is a list of *rounds*; a round is ``world_size``
batches of one bucket, one per rank. :meth:`BatchPlan.for_rank` gives rank ``r`` the ``r``-th
batch of every round, so every rank gets the same number of batches, and at each step all ranks
work on the same padded shape. Per epoch: each bucket's images are shuffled
(``SeedSequence(seed, spawn_key=(88, epoch))``), cut into its rounds by the ``last`` policy, and
the rounds of all buckets shuffled together. A bucket of ``n`` images with batch size ``B`` on
``W`` ranks has ``R = ceil(n / (B·W))`` rounds (``floor`` for ``drop``):

- ``short`` (also ``merge``, the plan's default, whose buckets hold at least B·W images): its
  ``R·W`` batches share the ``n`` images as evenly as possible (sizes differ by at most one), every
  image exactly once; only when ``n < R·W`` (batch size 1 with a remainder) do a few images repeat so
  that no batch is empty.
- ``pad``: every batch holds exactly ``B``; the last round is filled with images of the same bucket
  repeated from the start of this epoch's shuffled order (each image at least once; at most twice
  when the bucket holds at least B·W images).
- ``drop``: only whole rounds of ``B·W`` images; up to ``B·W − 1`` images of the bucket sit out this
  epoch (others the next: the shuffle changes); a bucket smaller than ``B·W`` is skipped.

Buckets whose batch size is 0 (the plan says one image does not fit the memory budget) are not
scheduled; :attr:`BatchPlan.unscheduled` counts their images.

PyTorch::

    plan = BatchPlan.load("plan", rank=dist.get_rank(), world_size=dist.get_world_size())
    loader = DataLoader(dataset, batch_sampler=plan, collate_fn=pad_to_batch)
    for epoch in range(E):
        plan.set_epoch(epoch)
        ...

TensorFlow: ``tf.data.Dataset.from_generator(lambda: iter(plan), ...)`` then map indices to images.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

SPAWN_KEY = 88  # SeedSequence spawn key of the batch order: (SPAWN_KEY, epoch)
LAST_POLICIES = ("short", "merge", "pad", "drop")


def bucket_rounds(n: int, size: int, world_size: int, last: str) -> int:
    """Rounds (``world_size`` batches each) of a bucket of ``n`` images at batch size ``size``."""
    if size < 1 or n < 1:
        return 0
    slots = size * world_size
    return n // slots if last == "drop" else -(-n // slots)


def cut_rounds(members: np.ndarray, size: int, world_size: int, last: str) -> list[list[np.ndarray]]:
    """The rounds of one bucket (its members already in this epoch's order), by the ``last`` policy."""
    r = bucket_rounds(members.size, size, world_size, last)
    if r == 0:
        return []
    slots = r * world_size
    if last == "drop":
        flat = np.split(members[:slots * size], slots)
    elif last == "pad":
        flat = np.split(np.resize(members, slots * size), slots)
    elif members.size >= slots:
        flat = np.array_split(members, slots)
    else:  # batch size 1 and fewer images than batches: repeat a few so that no batch is empty
        flat = np.split(np.resize(members, slots), slots)
    return [flat[i * world_size:(i + 1) * world_size] for i in range(r)]


class BatchPlan:
    """Batches of indices, one bucket each, reshuffled per epoch with a seed (see the module notes)."""

    def __init__(self, bucket_of: Sequence[int], batch_sizes: Sequence[int] | dict[int, int], *, seed: int = 0,
                 shuffle: bool = True, drop_last: bool = False, rank: int = 0, world_size: int = 1,
                 last: str = "short", paths: Sequence[str] | None = None,
                 padded_shapes: dict[int, tuple[int, int]] | None = None, image_root: str | None = None,
                 image_rule: str = "folder"):
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
        bad = {b: s for b, s in sizes.items() if int(s) < 0}
        if bad:
            raise ValueError(f"batch sizes must be at least 1 (0: bucket not scheduled): {bad}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError("need 0 <= rank < world_size")
        if last not in LAST_POLICIES:
            raise ValueError(f"last must be one of {', '.join(LAST_POLICIES)} (got {last!r})")
        self.last = "drop" if drop_last else last
        self.batch_sizes = {int(b): int(s) for b, s in sizes.items()}
        self.seed, self.shuffle, self.drop_last = int(seed), bool(shuffle), bool(drop_last)
        self.rank, self.world_size = int(rank), int(world_size)
        self.paths = list(paths) if paths is not None else None
        self.padded_shapes = dict(padded_shapes or {})
        self.image_root, self.image_rule = image_root, image_rule
        self.epoch = 0
        # Members of each bucket, in PLAN.csv order (stable): the unshuffled layout.
        order = np.argsort(self.bucket_of, kind="stable")
        ids, starts = np.unique(self.bucket_of[order], return_index=True)
        self._members = {int(b): order[s:e] for b, s, e in zip(ids, starts, np.append(starts[1:], order.size))}
        self.unscheduled = int(sum(m.size for b, m in self._members.items() if self.batch_sizes[b] == 0))

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
        with open(csv_path, encoding="utf-8", errors="surrogateescape", newline="") as fh:
            reader = csv.DictReader(fh)
            buckets, paths = [], []
            for row in reader:
                buckets.append(int(row["bucket"]))
                paths.append(row["path"])
        expected = meta.get("csv", {}).get("rows")
        if expected is not None and expected != len(buckets):
            raise ValueError(f"{csv_path} has {len(buckets)} rows but {json_path} describes {expected}: "
                             "the two files are from different runs; rerun methbuild buckets")
        settings = meta.get("settings", {})
        kwargs.setdefault("seed", int(settings.get("seed", 0)))
        if not kwargs.get("drop_last"):
            kwargs.setdefault("last", settings.get("last", "short"))
        if "world_size" not in kwargs and int(settings.get("world_size", 1)) > 1 and "rank" in kwargs:
            kwargs["world_size"] = int(settings["world_size"])
        return cls(buckets, sizes, paths=paths, padded_shapes=shapes, image_root=meta.get("image_root"),
                   image_rule=meta.get("image_rule", "folder"), **kwargs)

    # --- the sampler protocol -----------------------------------------------------------------------------------

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order the next iteration yields (as PyTorch's samplers)."""
        self.epoch = int(epoch)

    def rounds(self, world_size: int | None = None, epoch: int | None = None) -> list[tuple[int, list[np.ndarray]]]:
        """The epoch's shared schedule: ``(bucket, [one batch per rank])`` per round, in order."""
        w = self.world_size if world_size is None else int(world_size)
        if w < 1:
            raise ValueError("world_size must be at least 1")
        e = self.epoch if epoch is None else int(epoch)
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(SPAWN_KEY, e)))
        out: list[tuple[int, list[np.ndarray]]] = []
        for b in sorted(self._members):
            members = self._members[b]
            if self.shuffle:
                members = members[rng.permutation(members.size)]
            out += [(b, r) for r in cut_rounds(members, self.batch_sizes[b], w, self.last)]
        if self.shuffle:
            out = [out[i] for i in rng.permutation(len(out))]
        return out

    def for_rank(self, rank: int, world_size: int, epoch: int) -> list[list[int]]:
        """Rank ``rank``'s batches of ``epoch`` (row indices), out of ``world_size`` ranks.

        Every rank gets the same number of batches; the same (plan, seed, epoch, world_size) gives the
        same lists on any machine.
        """
        if not 0 <= rank < world_size:
            raise ValueError("need 0 <= rank < world_size")
        return [r[rank].tolist() for _, r in self.rounds(world_size, epoch)]

    def batches(self, epoch: int | None = None) -> list[tuple[int, np.ndarray]]:
        """This rank's batches of the epoch as ``(bucket id, indices)``, in order."""
        return [(b, r[self.rank]) for b, r in self.rounds(self.world_size, epoch)]

    def __iter__(self) -> Iterator[list[int]]:
        for _, idx in self.batches():
            yield idx.tolist()

    def __len__(self) -> int:
        """Batches per epoch for each rank (the same on every rank)."""
        return sum(bucket_rounds(m.size, self.batch_sizes[b], self.world_size, self.last)
                   for b, m in self._members.items())

    def image_file(self, i: int):
        """The file of row ``i``: relative to the input folder, or a manifest's file value resolved as a MetH CSV's
        ``Image file`` (bare ``436018.jpg`` → ``<csv folder>/data/436018.jpg``)."""
        from methbuild.io.meth_csv import resolve_image_file

        if self.paths is None or self.image_root is None:
            raise ValueError("this plan records no image root (a manifest without a file column)")
        if self.image_rule == "manifest":
            return resolve_image_file(self.image_root, self.paths[i])
        return Path(self.image_root) / self.paths[i]

    def padded_shape(self, bucket: int) -> tuple[int, int]:
        """(height, width) every image of ``bucket`` is padded to (plans loaded from files)."""
        return self.padded_shapes[int(bucket)]

    def __repr__(self) -> str:
        return (f"BatchPlan({self.bucket_of.size} images, {len(self._members)} buckets, {len(self)} batches, "
                f"seed={self.seed}, epoch={self.epoch})")
