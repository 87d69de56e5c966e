"""B2B boundaries: padding on hand-made cases, every image once, never worse than equal-count, determinism."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from methbuild.buckets.boundaries import (assign, bucketize, cut_positions, equal_count, group_padding, partition,
                                          partition_padding, pixel_order)


def test_group_padding_by_hand():
    # max 4 × 3 = 12 per image: (12 − 6) + (12 − 4) = 14
    assert group_padding([2, 4], [3, 1]) == 14
    assert group_padding([5], [7]) == 0
    assert group_padding([], []) == 0
    assert group_padding([3, 3, 3], [2, 2, 2]) == 0
    # portrait + landscape: both padded to 100 × 100
    assert group_padding([100, 10], [10, 100]) == 2 * 100 * 100 - 2 * 1000


def test_partition_padding_by_hand():
    w = np.array([2, 4, 10, 10, 12])
    h = np.array([3, 1, 10, 8, 10])
    got = partition_padding(w, h, np.array([0, 2]))
    assert got.tolist() == [14, 3 * 120 - (100 + 80 + 120)]


def test_two_sizes_two_superbuckets_have_no_padding():
    w = np.array([10, 100, 10, 100])
    h = np.array([10, 100, 10, 100])
    r = bucketize(w, h, 2, 1)
    assert r.padding == 0
    assert r.super_of.tolist() == [0, 1, 0, 1]
    assert r.pixel_bounds == [100 * 100]


def test_aspect_buckets_split_portrait_from_landscape():
    w = np.array([300, 300, 100, 100, 310])
    h = np.array([100, 100, 300, 300, 100])
    r = bucketize(w, h, 1, 2)
    assert r.padding == 2 * (310 - 300) * 100  # only the two 300×100 images pad, to 310×100
    assert r.bucket_of[2] == r.bucket_of[3] != r.bucket_of[0]
    assert r.aspect_bounds == [[pytest.approx(3.0)]]


def _random_sizes(rng, n):
    mp = np.exp(rng.normal(np.log(6e6), 0.9, n))
    ar = np.exp(rng.normal(0, 0.4, n))
    return (np.maximum(1, np.sqrt(mp * ar)).astype(np.int64), np.maximum(1, np.sqrt(mp / ar)).astype(np.int64))


@pytest.mark.parametrize("case", range(12))
def test_every_image_once_and_padding_consistent(case):
    rng = np.random.default_rng(case)
    n = int(rng.integers(1, 600))
    w, h = _random_sizes(rng, n) if case % 2 else (rng.integers(1, 30, n), rng.integers(1, 30, n))
    k, m = int(rng.integers(1, 6)), int(rng.integers(1, 6))
    for method in ("b2b", "equal"):
        r = bucketize(w, h, k, m, method=method, seed=case)
        assert r.bucket_of.shape == (n,) and r.super_of.shape == (n,)
        counts = np.bincount(r.bucket_of, minlength=r.n_buckets)
        assert counts.sum() == n and (counts > 0).all() and len(counts) == r.n_buckets
        assert r.n_buckets <= k * m
        # every bucket lies in one super-bucket, the one the plan says
        for b, s in enumerate(r.bucket_super):
            assert set(r.super_of[r.bucket_of == b].tolist()) == {s}
        recomputed = sum(group_padding(w[r.bucket_of == b], h[r.bucket_of == b]) for b in range(r.n_buckets))
        assert recomputed == (r.padding if method == "b2b" else r.padding_equal_count)
        # the thresholds written to PLAN.json give back the same assignment
        sb, bk = assign(w, h, r.pixel_bounds, r.aspect_bounds, r.bucket_super)
        assert (sb == r.super_of).all() and (bk == r.bucket_of).all()


@pytest.mark.parametrize("seed", range(25))
def test_never_worse_than_equal_count_start(seed):
    rng = np.random.default_rng(100 + seed)
    w, h = _random_sizes(rng, int(rng.integers(50, 2000)))
    k, m = int(rng.integers(1, 8)), int(rng.integers(1, 8))
    r = bucketize(w, h, k, m, seed=seed)
    eq = bucketize(w, h, k, m, method="equal")
    assert r.padding <= r.padding_equal_count == eq.padding_equal_count == eq.padding
    # one level alone, too
    order = np.argsort(w * h, kind="stable")
    part = partition(w[order], h[order], (w * h)[order], k + 1, seed=seed)
    assert part.padding <= part.start_padding


def test_b2b_clearly_beats_equal_count_on_met_like_sizes():
    w, h = _random_sizes(np.random.default_rng(7), 5000)
    r = bucketize(w, h, 4, 4)
    assert r.padding < 0.8 * r.padding_equal_count


def _brute_force(w, h, groups):
    key = w * h
    cuts = cut_positions(key)
    best = None
    for combo in itertools.combinations(cuts.tolist(), groups - 1):
        p = int(partition_padding(w, h, np.array([0, *combo])).sum())
        best = p if best is None else min(best, p)
    return best


@pytest.mark.parametrize("seed", range(10))
def test_one_boundary_reaches_the_optimum_and_two_come_close(seed):
    rng = np.random.default_rng(seed)
    w, h = rng.integers(1, 60, 40), rng.integers(1, 60, 40)
    o = pixel_order(w, h)
    w, h = w[o], h[o]
    assert partition(w, h, w * h, 2, restarts=0).padding == _brute_force(w, h, 2)
    three = partition(w, h, w * h, 3, seed=seed).padding
    assert _brute_force(w, h, 3) <= three <= 1.25 * _brute_force(w, h, 3)


def test_deterministic_given_the_seed():
    w, h = _random_sizes(np.random.default_rng(3), 3000)
    a = bucketize(w, h, 3, 5, seed=11)
    b = bucketize(w, h, 3, 5, seed=11)
    assert (a.bucket_of == b.bucket_of).all() and a.pixel_bounds == b.pixel_bounds
    assert a.aspect_bounds == b.aspect_bounds


def test_equal_sizes_are_never_split_and_fewer_groups_are_noted():
    w = np.array([10] * 5 + [20] * 5)
    h = np.array([10] * 5 + [20] * 5)
    r = bucketize(w, h, 4, 3)
    assert len(set(r.super_of[:5].tolist())) == 1 and len(set(r.super_of[5:].tolist())) == 1
    assert r.n_buckets == 2 and r.padding == 0
    assert any("super-bucket" in n for n in r.notes)


def test_equal_count_boundaries():
    cuts = np.arange(1, 100)
    assert equal_count(cuts, 100, 4).tolist() == [24, 49, 74]  # cut positions 25, 50, 75
    # a key with ties: only a few places to cut, all still used, strictly increasing
    cuts = np.array([10, 11, 90])
    assert equal_count(cuts, 100, 4).tolist() == [0, 1, 2]


@pytest.mark.parametrize("k,m", [(0, 1), (1, 0), (-1, 3)])
def test_bad_counts(k, m):
    with pytest.raises(ValueError, match="at least 1"):
        bucketize([1, 2], [1, 2], k, m)


def test_zero_sizes_are_refused():
    with pytest.raises(ValueError, match="positive"):
        bucketize([10, 0], [10, 10], 1, 1)


def test_geometric_tail_cuts():
    from methbuild.buckets.boundaries import geometric_tail

    px = np.sort(np.exp(np.random.default_rng(0).normal(np.log(6e6), 0.9, 20_000))).astype(np.int64)
    cuts = cut_positions(px)
    b = geometric_tail(px, cuts, 6)
    assert len(b) == 5 and (np.diff(b) > 0).all()
    thresholds = px[cuts[b]].astype(float)
    med, top = float(px[px.size // 2]), float(px[-1])
    assert abs(cuts[b][2] - px.size / 2) <= 1  # equal-count up to the median
    # above it, equal ratios between thresholds (to the rounding of the nearest cut)
    ratios = np.diff(np.log(np.r_[thresholds[2:], top]))
    assert np.allclose(ratios, np.log(top / med) / 3, rtol=0.02)
