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


def test_ranks_split_an_epoch_exactly():
    bucket_of, sizes, _ = _plan()
    parts = [BatchPlan(bucket_of, sizes, seed=1, rank=r, world_size=3) for r in range(3)]
    for p in parts:
        p.set_epoch(2)
    flat = np.concatenate([np.asarray(b) for p in parts for b in p])
    assert np.sort(flat).tolist() == list(range(len(bucket_of)))
    assert sum(len(p) for p in parts) == len(BatchPlan(bucket_of, sizes))


def test_bad_arguments():
    with pytest.raises(ValueError, match="no batch size"):
        BatchPlan([0, 1], {0: 2})
    with pytest.raises(ValueError, match="at least 1"):
        BatchPlan([0], {0: 0})
    with pytest.raises(ValueError):
        BatchPlan([0], {0: 1}, rank=2, world_size=2)


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
