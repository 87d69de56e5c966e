"""BatchPlan: every image exactly once per epoch, one bucket per batch, seeded order per epoch."""

from __future__ import annotations

import json

import numpy as np
import pytest

from methbuild.buckets import BatchPlan


def _plan(**kw):
    rng = np.random.default_rng(0)
    bucket_of = rng.integers(0, 5, 1003)
    sizes = {0: 7, 1: 1, 2: 64, 3: 5000, 4: 10}
    return bucket_of, sizes, BatchPlan(bucket_of, sizes, **kw)


@pytest.mark.parametrize("epoch", [0, 1, 7])
def test_each_epoch_covers_every_image_exactly_once(epoch):
    bucket_of, sizes, plan = _plan(seed=3)
    plan.set_epoch(epoch)
    batches = list(plan)
    assert len(batches) == len(plan)
    flat = np.concatenate([np.asarray(b) for b in batches])
    assert np.sort(flat).tolist() == list(range(len(bucket_of)))
    for b in batches:
        assert len(set(bucket_of[b].tolist())) == 1  # one bucket, one padded shape
        assert 1 <= len(b) <= sizes[int(bucket_of[b[0]])]


def test_order_is_seeded_per_epoch():
    _, _, a = _plan(seed=3)
    _, _, b = _plan(seed=3)
    _, _, c = _plan(seed=4)
    first = list(a)
    assert first == list(b) == list(a)  # same seed and epoch: same batches
    a.set_epoch(1)
    assert list(a) != first
    assert list(c) != first
    # the batch order mixes buckets (not all of bucket 0 first)
    bucket_of, _, p = _plan(seed=3)
    order = [int(bucket_of[x[0]]) for x in p]
    assert order != sorted(order)


def test_no_shuffle_and_drop_last():
    bucket_of = [0, 0, 0, 1, 1, 0]
    plan = BatchPlan(bucket_of, [2, 2], shuffle=False)
    assert list(plan) == [[0, 1], [2, 5], [3, 4]]
    plan = BatchPlan([0, 0, 0, 1], {0: 2, 1: 2}, drop_last=True, shuffle=False)
    assert list(plan) == [[0, 1]] and len(plan) == 1


@pytest.mark.parametrize("world", [1, 2, 8])
@pytest.mark.parametrize("last", ["short", "pad", "drop"])
def test_per_rank_schedule(world, last):
    """Every rank the same number of batches, no mixed buckets, disjoint coverage, deterministic; one round = one
    bucket on every rank."""
    bucket_of, sizes, plan = _plan(seed=1, last=last)
    plan.set_epoch(2)
    ranks = [plan.for_rank(r, world, 2) for r in range(world)]
    assert len({len(x) for x in ranks}) == 1 and len(ranks[0]) > 0
    assert len(ranks[0]) == len(BatchPlan(bucket_of, sizes, last=last, rank=0, world_size=world))
    for step in zip(*ranks):  # at each step all ranks work on one bucket (one padded shape)
        assert len({int(bucket_of[b[0]]) for b in step}) == 1
    flat = [i for x in ranks for b in x for i in b]
    for x in ranks:
        for b in x:
            assert len(set(bucket_of[b].tolist())) == 1 and 1 <= len(b) <= sizes[int(bucket_of[b[0]])]
            if last in ("pad", "drop"):
                assert len(b) == sizes[int(bucket_of[b[0]])]
    counts = np.bincount(flat, minlength=len(bucket_of))
    if last == "short":
        # bucket 1 has batch size 1: only its remainder may repeat (so that no batch is empty)
        assert (counts[bucket_of != 1] == 1).all() and (counts >= 1).all()
        assert counts[bucket_of == 1].sum() - (bucket_of == 1).sum() < world
    elif last == "pad":
        assert counts.min() >= 1
        for b, size in sizes.items():  # at most twice where the bucket fills a round
            if (bucket_of == b).sum() >= size * world:
                assert counts[bucket_of == b].max() <= 2
    else:
        assert counts.max() <= 1
        for b, size in sizes.items():  # drop: only less than one round of each bucket sits out
            assert ((counts == 0) & (bucket_of == b)).sum() < size * world
    # deterministic: a fresh object (another machine) gives the same lists; another epoch does not
    again = BatchPlan(bucket_of, sizes, seed=1, last=last)
    assert [again.for_rank(r, world, 2) for r in range(world)] == ranks
    assert again.for_rank(0, world, 3) != ranks[0]


def test_rank_iteration_matches_for_rank():
    bucket_of, sizes, _ = _plan()
    plans = [BatchPlan(bucket_of, sizes, seed=4, rank=r, world_size=2) for r in range(2)]
    for r, p in enumerate(plans):
        p.set_epoch(5)
        assert list(p) == p.for_rank(r, 2, 5) and len(p) == len(list(p))


def test_unscheduled_bucket_and_bad_arguments():
    plan = BatchPlan([0, 0, 1], {0: 1, 1: 0})
    assert plan.unscheduled == 1 and sorted(i for b in plan for i in b) == [0, 1]
    with pytest.raises(ValueError, match="no batch size"):
        BatchPlan([0, 1], {0: 2})
    with pytest.raises(ValueError, match="at least 1"):
        BatchPlan([0], {0: -1})
    with pytest.raises(ValueError):
        BatchPlan([0], {0: 1}, rank=2, world_size=2)
    with pytest.raises(ValueError, match="last"):
        BatchPlan([0], {0: 1}, last="sometimes")


def test_load_from_plan_files(tmp_path):
    (tmp_path / "p.csv").write_text("path,width,height,super_bucket,bucket,padded_width,padded_height\n"
                                    "a.jpg,10,10,0,0,10,10\nb.jpg,20,10,0,1,30,10\nc.jpg,30,10,0,1,30,10\n")
    meta = {"settings": {"seed": 5}, "buckets": [
        {"id": 0, "batch_size": 4, "padded_width": 10, "padded_height": 10},
        {"id": 1, "batch_size": 1, "padded_width": 30, "padded_height": 10}]}
    (tmp_path / "p.json").write_text(json.dumps(meta))
    plan = BatchPlan.load(tmp_path / "p")
    assert plan.seed == 5 and len(plan) == 3 and plan.padded_shape(1) == (10, 30)
    assert sorted(i for b in plan for i in b) == [0, 1, 2]
    assert plan.paths == ["a.jpg", "b.jpg", "c.jpg"]
    assert BatchPlan.load(tmp_path / "p.json", seed=9).seed == 9


def test_import_is_framework_free():
    import subprocess
    import sys

    code = ("import sys; from methbuild.buckets import BatchPlan; "
            "print(sorted(m for m in ('torch', 'tensorflow', 'pandas', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_load_refuses_a_csv_from_another_run(tmp_path):
    (tmp_path / "p.csv").write_text("path,bucket\na.jpg,0\n")
    meta = {"csv": {"rows": 2}, "buckets": [{"id": 0, "batch_size": 1, "padded_width": 1, "padded_height": 1}]}
    (tmp_path / "p.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="different runs"):
        BatchPlan.load(tmp_path / "p")
