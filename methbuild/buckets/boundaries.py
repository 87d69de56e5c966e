"""Where to cut: padding of a group of images, equal-count boundaries, and the B2B heuristic.

A *group* of images is batched at the padded shape ``max_w × max_h`` of its members, so its
padding is ``Σ (max_w·max_h − w·h)`` over them (papers 001/002). B2B ("buckets to buckets")
cuts a collection twice: by pixel count into K super-buckets, then each super-bucket by aspect
ratio (w/h) into M buckets.

Both cuts are 1-D partitions of images sorted by a key. A boundary may only fall where the key
changes, so that the boundaries can be written as key thresholds and two images with the same
key are never split. The heuristic (:func:`partition`) starts from equal-count boundaries and
moves each boundary, one at a time, to the position between its neighbours where the padding of
its two groups is smallest — "back and forth" done exhaustively, in O(group size) with running
maxima — and sweeps until no boundary moves. Seeded random starts (``restarts``) then try to
escape local minima; the best result wins, so the answer is never worse than the descent from
the equal-count start, which is never worse than the start itself.

The super-bucket cut is first optimised on the super-buckets' own padding (the paper's first
step), then polished on what matters, the padding after the aspect-ratio cut (see
:func:`bucketize`). The polish starts from the better of that cut and the equal-count cut, and
only accepts moves that lower the final padding, so B2B is never worse than equal-count
boundaries at both levels (a test checks it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MAX_SWEEPS = 200
POLISH_EVALUATIONS = 120  # two-level evaluations the super-bucket polish may spend
POLISH_FULL_BELOW = 200_000  # above this many images the polish budget shrinks in proportion
TOO_SMALL = 2**62  # the "padding" of a cut with a super-bucket under min_size: never chosen
POLISH_RESOLUTION = 4096  # finest polish step: 1/4096 of the possible cut positions (1 on small collections)


def group_padding(w: np.ndarray, h: np.ndarray) -> int:
    """Padding of one group: Σ (max_w·max_h − w·h) in pixels (0 for an empty group)."""
    w = np.asarray(w, dtype=np.int64)
    h = np.asarray(h, dtype=np.int64)
    if w.size == 0:
        return 0
    return int(w.size * int(w.max()) * int(h.max()) - int((w * h).sum()))


def partition_padding(w: np.ndarray, h: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Padding of each contiguous group of ``w``/``h`` (already in key order), groups starting at ``starts``."""
    starts = np.asarray(starts, dtype=np.int64)
    if w.size == 0:
        return np.zeros(0, dtype=np.int64)
    counts = np.diff(np.append(starts, w.size))
    mw = np.maximum.reduceat(w, starts)
    mh = np.maximum.reduceat(h, starts)
    area = np.add.reduceat(w * h, starts)
    return counts * mw * mh - area


def cut_positions(key: np.ndarray) -> np.ndarray:
    """Positions ``p`` (1..n−1) of a sorted key where a boundary may fall: ``key[p] != key[p−1]``."""
    if key.size < 2:
        return np.zeros(0, dtype=np.int64)
    return (np.flatnonzero(key[1:] != key[:-1]) + 1).astype(np.int64)


def equal_count(cuts: np.ndarray, n: int, groups: int) -> np.ndarray:
    """Indices into ``cuts`` of the boundaries closest to ``k·n/groups`` (strictly increasing).

    ``groups`` must be at most ``len(cuts) + 1``.
    """
    g = groups - 1
    if g <= 0:
        return np.zeros(0, dtype=np.int64)
    targets = np.arange(1, groups) * n / groups
    idx = np.searchsorted(cuts, targets)
    lo = np.clip(idx - 1, 0, len(cuts) - 1)
    hi = np.clip(idx, 0, len(cuts) - 1)
    pick = np.where(np.abs(cuts[hi] - targets) < np.abs(cuts[lo] - targets), hi, lo)
    # Ties in the key may pull two targets onto one cut: spread them, keeping room on both sides.
    out = pick.astype(np.int64)
    for k in range(g):
        out[k] = max(out[k], out[k - 1] + 1 if k else 0)
        out[k] = min(out[k], len(cuts) - g + k)
    return out


def nearest_cuts(cuts: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Indices into ``cuts`` closest to each of the increasing ``targets`` (positions), kept strictly increasing."""
    g = len(targets)
    if g == 0:
        return np.zeros(0, dtype=np.int64)
    idx = np.searchsorted(cuts, targets)
    lo = np.clip(idx - 1, 0, len(cuts) - 1)
    hi = np.clip(idx, 0, len(cuts) - 1)
    out = np.where(np.abs(cuts[hi] - targets) < np.abs(cuts[lo] - targets), hi, lo).astype(np.int64)
    for k in range(g):
        out[k] = max(out[k], out[k - 1] + 1 if k else 0)
        out[k] = min(out[k], len(cuts) - g + k)
    return out


def geometric_tail(px: np.ndarray, cuts: np.ndarray, groups: int) -> np.ndarray:
    """Super-bucket boundaries (indices into ``cuts``): equal-count up to the median pixel count, then thresholds
    in geometric progression from the median to the largest image.

    Pixel counts of photographed collections have a long upper tail (Met originals: median 6.1 MP,
    max 66.6 MP); equal-count cuts put that whole tail in one super-bucket padded to its largest image.
    Geometric cuts give each tail super-bucket the same max/min ratio instead. ``px`` is sorted.
    """
    n = px.size
    if groups <= 1 or n < 2:
        return np.zeros(0, dtype=np.int64)
    low = groups // 2  # groups below the median
    targets = [i * n / groups for i in range(1, low)] + [n / 2]
    med, top = float(px[n // 2]), float(px[-1])
    high = groups - low
    if top > med > 0:
        thresholds = med * (top / med) ** (np.arange(1, high) / high)
        targets += np.searchsorted(px, thresholds).astype(float).tolist()
    targets = np.maximum.accumulate(np.asarray(targets[:groups - 1], dtype=float))
    return nearest_cuts(cuts, targets)


@dataclass
class Partition:
    """Boundaries of one 1-D cut: ``starts`` of each group in key order, and the total padding."""

    starts: np.ndarray  # group start positions, starts[0] == 0
    padding: int
    start_padding: int  # padding of the equal-count start (the heuristic never does worse)


class _Cost:
    """Padding of groups of a key-sorted collection; evaluates a boundary's every position at once.

    ``min_size``: no group may hold fewer images (a boundary only moves where both its groups keep that many).
    """

    def __init__(self, w: np.ndarray, h: np.ndarray, cuts: np.ndarray, min_size: int = 1):
        self.w, self.h, self.cuts = w, h, cuts
        self.n = w.size
        self.min_size = max(1, int(min_size))
        self.area = np.concatenate([[0], np.cumsum(w * h)]).astype(np.int64)

    def total(self, bounds: np.ndarray) -> int:
        starts = np.concatenate([[0], self.cuts[bounds]]).astype(np.int64)
        return int(partition_padding(self.w, self.h, starts).sum())

    def best_between(self, a: int, c: int, lo: int, hi: int) -> tuple[int, int]:
        """Best boundary index j in cuts[lo:hi] splitting positions [a, c); returns (j, padding of both groups)."""
        p = self.cuts[lo:hi]
        if self.min_size > 1:  # both groups keep at least min_size images
            keep = (p - a >= self.min_size) & (c - p >= self.min_size)
            if not keep.any():
                return -1, 0
            idx = np.flatnonzero(keep)
            lo, hi, p = lo + int(idx[0]), lo + int(idx[-1]) + 1, p[idx[0]:idx[-1] + 1]
        w, h = self.w[a:c], self.h[a:c]
        fw, fh = np.maximum.accumulate(w), np.maximum.accumulate(h)
        bw, bh = np.maximum.accumulate(w[::-1])[::-1], np.maximum.accumulate(h[::-1])[::-1]
        r = p - a  # relative boundary: left group is [0, r), right is [r, c − a)
        left = r * fw[r - 1] * fh[r - 1]
        right = (c - a - r) * bw[r] * bh[r]
        cost = left + right - (self.area[c] - self.area[a])
        k = int(np.argmin(cost))
        return lo + k, int(cost[k])

    def pair(self, a: int, b: int, c: int) -> int:
        return int(partition_padding(self.w[a:c], self.h[a:c], np.array([0, b - a])).sum())

    def descend(self, bounds: np.ndarray) -> np.ndarray:
        """Move each boundary to its best place between its neighbours until none moves."""
        bounds = bounds.copy()
        g = len(bounds)
        for _ in range(MAX_SWEEPS):
            moved = False
            for i in range(g):
                lo = bounds[i - 1] + 1 if i else 0
                hi = bounds[i + 1] if i + 1 < g else len(self.cuts)
                a = int(self.cuts[bounds[i - 1]]) if i else 0
                c = int(self.cuts[bounds[i + 1]]) if i + 1 < g else self.n
                j, cost = self.best_between(a, c, int(lo), int(hi))
                if j >= 0 and j != bounds[i] and cost < self.pair(a, int(self.cuts[bounds[i]]), c):
                    bounds[i] = j
                    moved = True
            if not moved:
                break
        return bounds


def partition(w: np.ndarray, h: np.ndarray, key: np.ndarray, groups: int, *, optimise: bool = True,
              seed: int = 0, spawn_key: tuple[int, ...] = (), restarts: int = 4, min_size: int = 1) -> Partition:
    """Cut a collection (``w``, ``h``, ``key`` already sorted by ``key``) into at most ``groups`` groups.

    Fewer groups result when the key has fewer distinct values. With ``optimise=False`` the
    equal-count boundaries are returned; otherwise the B2B descent from them, then ``restarts``
    descents from seeded random boundaries (``SeedSequence(seed, spawn_key=spawn_key)``), best kept.
    With ``min_size`` > 1 the number of groups is capped at ``n // min_size`` and the descent keeps every
    group at ``min_size`` images or more (when the equal-count start does; random starts that do not are
    discarded).
    """
    w = np.asarray(w, dtype=np.int64)
    h = np.asarray(h, dtype=np.int64)
    n = w.size
    if n == 0:
        return Partition(np.zeros(1, dtype=np.int64), 0, 0)
    cuts = cut_positions(np.asarray(key))
    groups = max(1, min(groups, len(cuts) + 1, n // max(1, min_size)))
    cost = _Cost(w, h, cuts, min_size)
    start = equal_count(cuts, n, groups)
    start_padding = best_padding = cost.total(start)
    best = start
    if optimise and groups > 1:
        best = cost.descend(start)
        best_padding = cost.total(best)
        if restarts and len(cuts) > groups:
            rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=tuple(spawn_key)))
            for _ in range(restarts):
                trial = np.sort(rng.choice(len(cuts), size=groups - 1, replace=False)).astype(np.int64)
                if min_size > 1 and _smallest(cuts, trial, n) < min_size:
                    continue
                trial = cost.descend(trial)
                p = cost.total(trial)
                if p < best_padding:
                    best, best_padding = trial, p
    starts = np.concatenate([[0], cuts[best]]).astype(np.int64)
    return Partition(starts, best_padding, start_padding)


def _smallest(cuts: np.ndarray, bounds: np.ndarray, n: int) -> int:
    """Size of the smallest group of the boundaries ``bounds`` (indices into ``cuts``)."""
    edges = np.concatenate([[0], cuts[bounds], [n]])
    return int(np.diff(edges).min())


# --- two levels: super-buckets by pixel count, buckets by aspect ratio -------------------------------------------

@dataclass
class Bucketing:
    """The result of cutting a collection into super-buckets and buckets.

    ``super_of`` and ``bucket_of`` give each image (in input order) its super-bucket and its global
    bucket id; buckets are numbered super-bucket by super-bucket, by increasing aspect ratio.
    """

    super_of: np.ndarray
    bucket_of: np.ndarray
    pixel_bounds: list[int]  # K−1 thresholds: super-bucket = number of thresholds <= w·h
    aspect_bounds: list[list[float]]  # per super-bucket, M−1 thresholds on w/h (same rule)
    bucket_super: list[int]  # super-bucket of each bucket
    padding: int
    padding_equal_count: int  # of equal-count boundaries at both levels
    method: str = "b2b"
    notes: list[str] = field(default_factory=list)
    # per super-bucket: (its images in aspect order, start of each of its buckets in that order)
    layout: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)

    @property
    def n_buckets(self) -> int:
        return len(self.bucket_super)


def pixel_order(w: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Images by pixel count, ties by width then input position (a deterministic total order)."""
    w = np.asarray(w, dtype=np.int64)
    h = np.asarray(h, dtype=np.int64)
    if w.size and int(w.max()) < 2**21 and int(w.max()) * int(h.max()) < 2**41:
        # one int64 key (pixels, then width) and a stable sort: the same order as the lexsort, ~3× faster
        return np.argsort((w * h) << 21 | w, kind="stable")
    return np.lexsort((np.arange(w.size), w, w * h))


def aspect_key(w: np.ndarray, h: np.ndarray) -> np.ndarray:
    # IEEE division is correctly rounded, so equal ratios (2/1, 4/2) give equal keys.
    return w.astype(np.float64) / h.astype(np.float64)


def _inner(w: np.ndarray, h: np.ndarray, m: int, optimise: bool, seed: int, sb: int, restarts: int,
           min_size: int = 1, order: np.ndarray | None = None):
    """Aspect-ratio cut of one super-bucket: (order within it, Partition).

    ``order``: the super-bucket's images by aspect ratio, if the caller has it (see :func:`bucketize`).
    """
    ar = aspect_key(w, h)
    if order is None:
        # Stable: ties in w/h keep the pixel order of the super-bucket (a deterministic total order).
        order = np.argsort(ar, kind="stable")
    part = partition(w[order], h[order], ar[order], m, optimise=optimise, seed=seed, spawn_key=(8, 1, sb),
                     restarts=restarts, min_size=min_size)
    return order, part


def bucketize(w, h, superbuckets: int, buckets: int, *, method: str = "b2b", seed: int = 0,
              restarts: int = 4, polish: int = POLISH_EVALUATIONS, min_size: int = 1) -> Bucketing:
    """Cut images of sizes ``w × h`` into ``superbuckets`` × ``buckets`` groups (see the module notes).

    ``method`` is ``"b2b"`` (the heuristic) or ``"equal"`` (equal-count boundaries at both levels).
    ``min_size`` > 1: the heuristic keeps every super-bucket and bucket at that many images or more
    where it can (fewer buckets are made in a super-bucket too small for ``buckets`` of them); the
    equal-count baseline ignores it.
    """
    if superbuckets < 1 or buckets < 1:
        raise ValueError("the numbers of super-buckets and buckets must be at least 1")
    if method not in ("b2b", "equal"):
        raise ValueError(f"unknown method {method!r}")
    w = np.asarray(w, dtype=np.int64)
    h = np.asarray(h, dtype=np.int64)
    if w.shape != h.shape or w.ndim != 1:
        raise ValueError("w and h must be 1-D arrays of the same length")
    if w.size == 0:
        raise ValueError("no images to bucket")
    if (w <= 0).any() or (h <= 0).any():
        raise ValueError("every width and height must be positive")
    n = w.size
    order = pixel_order(w, h)
    ws, hs = w[order], h[order]
    px = ws * hs
    cuts = cut_positions(px)
    k = max(1, min(superbuckets, len(cuts) + 1))
    notes = []
    if k < superbuckets:
        notes.append(f"only {k} distinct pixel count(s): {k} super-bucket(s) instead of {superbuckets}")

    cache: dict[tuple[int, int, bool, int], int] = {}  # paddings only: the polish evaluates many cuts

    # Every super-bucket is a run [a, b) of the pixel order; its aspect order (stable: ties by pixel position) is
    # the positions of that run taken from one global aspect order, an O(n) filter instead of a sort per run.
    by_aspect = np.lexsort((np.arange(n), aspect_key(ws, hs))) if buckets > 1 else None

    def inner(a: int, b: int, optimise: bool, rs: int):
        """Aspect cut of the super-bucket of sorted positions [a, b): (order within it, Partition)."""
        sub = None
        if by_aspect is not None:
            sub = by_aspect[(by_aspect >= a) & (by_aspect < b)] - a
        return _inner(ws[a:b], hs[a:b], buckets, optimise, seed, a, rs, min_size if optimise else 1, sub)

    def total(bounds: np.ndarray, optimise: bool, rs: int) -> int:
        edges = [0, *(int(cuts[j]) for j in bounds), n]
        if optimise and min_size > 1 and min(b - a for a, b in zip(edges, edges[1:])) < min_size:
            return TOO_SMALL
        out = 0
        for a, b in zip(edges, edges[1:]):
            key = (a, b, optimise, rs)
            if key not in cache:
                cache[key] = inner(a, b, optimise, rs)[1].padding
            out += cache[key]
        return out

    eq = equal_count(cuts, n, k)
    padding_equal = total(eq, False, 0)
    if method == "equal" or k == 1:
        chosen = eq
        final_opt = method == "b2b"
    else:
        cost = _Cost(ws, hs, cuts, min_size)
        first = cost.descend(eq)  # the paper's first step: super-buckets on their own padding
        cands = [(total(eq, True, 0), 1, eq), (total(first, True, 0), 0, first)]
        if len(cuts) + 1 > k:  # a geometric tail start (never chosen unless it pads less)
            geo = geometric_tail(px, cuts, k)
            if len(geo) == k - 1:
                geo_first = cost.descend(geo)
                cands += [(total(geo, True, 0), 3, geo), (total(geo_first, True, 0), 2, geo_first)]
        score, _, chosen = min(cands, key=lambda t: (t[0], t[1]))
        if n <= POLISH_FULL_BELOW:
            chosen, score = _polish(chosen, score, cuts, lambda b: total(b, True, 0), polish)
        elif score < TOO_SMALL:
            # A million images: each evaluation re-cuts two super-buckets of ~n/K images. Polish on every
            # stride-th image of the pixel order instead, then keep the result only if the full two-level
            # padding confirms it is lower (so the guarantee holds on the full collection).
            stride = -(-n // POLISH_FULL_BELOW)
            sample_cache: dict[tuple[int, int], int] = {}

            def approx(bounds: np.ndarray) -> int:
                edges = [0, *(int(cuts[j]) for j in bounds), n]
                if min_size > 1 and min(b - a for a, b in zip(edges, edges[1:])) < min_size:
                    return TOO_SMALL
                out = 0
                for a, b in zip(edges, edges[1:]):
                    if (a, b) not in sample_cache:
                        sample_cache[(a, b)] = _inner(ws[a:b:stride], hs[a:b:stride], buckets, True, seed, a, 0,
                                                      max(1, min_size // stride))[1].padding
                    out += sample_cache[(a, b)]
                return out

            polished, _ = _polish(chosen, approx(chosen), cuts, approx, polish)
            if not np.array_equal(polished, chosen):
                full = total(polished, True, 0)
                if full < score:
                    chosen, score = polished, full
        if score >= TOO_SMALL:  # neither start keeps every super-bucket at min_size: take the equal-count cut
            chosen = eq
        final_opt = True
    edges = [0, *(int(cuts[j]) for j in chosen), n]

    super_of = np.empty(n, dtype=np.int64)
    bucket_of = np.empty(n, dtype=np.int64)
    aspect_bounds: list[list[float]] = []
    bucket_super: list[int] = []
    padding = 0
    layout = []
    for s in range(len(edges) - 1):
        a, b = edges[s], edges[s + 1]
        idx = order[a:b]
        # With restarts the descent from the equal-count start is still tried first and kept unless beaten.
        sub_order, part = inner(a, b, final_opt, restarts if final_opt else 0)
        padding += part.padding
        super_of[idx] = s
        layout.append((idx[sub_order], part.starts.copy()))
        ar_sorted = aspect_key(ws[a:b][sub_order], hs[a:b][sub_order])
        aspect_bounds.append([float(ar_sorted[p]) for p in part.starts[1:]])
        ends = np.append(part.starts[1:], b - a)
        for p0, p1 in zip(part.starts, ends):
            bucket_of[idx[sub_order[p0:p1]]] = len(bucket_super)
            bucket_super.append(s)
        if len(part.starts) < buckets and not (min_size > 1 and len(part.starts) == (b - a) // min_size):
            notes.append(f"super-bucket {s}: only {len(part.starts)} distinct aspect ratio(s), "
                         f"{len(part.starts)} bucket(s) instead of {buckets}")
    pixel_bounds = [int(px[int(cuts[j])]) for j in chosen]
    return Bucketing(super_of, bucket_of, pixel_bounds, aspect_bounds, bucket_super, padding, padding_equal,
                     method, notes, layout)


def _polish(bounds: np.ndarray, score: int, cuts: np.ndarray, evaluate, budget: int) -> tuple[np.ndarray, int]:
    """Pattern search on the super-bucket boundaries against the two-level padding.

    Each boundary is moved by ±step (in cut positions) while the final padding falls; the step
    halves down to 1 (or 1/POLISH_RESOLUTION of the positions on big collections, where finer moves
    change nothing that matters). Stops after ``budget`` evaluations. Only improvements are accepted.
    """
    bounds = bounds.copy()
    g = len(bounds)
    if g == 0 or budget <= 0:
        return bounds, score
    spent = 0
    step = max(1, len(cuts) // (4 * (g + 1)))
    finest = max(1, len(cuts) // POLISH_RESOLUTION)
    while step >= finest and spent < budget:
        improved = False
        for i in range(g):
            lo = bounds[i - 1] + 1 if i else 0
            hi = bounds[i + 1] - 1 if i + 1 < g else len(cuts) - 1
            for direction in (-1, 1):
                while spent < budget:
                    j = bounds[i] + direction * step
                    if j < lo or j > hi:
                        break
                    trial = bounds.copy()
                    trial[i] = j
                    s = evaluate(trial)
                    spent += 1
                    if s < score:
                        bounds, score, improved = trial, s, True
                    else:
                        break
        if not improved:
            step //= 2
    return bounds, score


def assign(w, h, pixel_bounds, aspect_bounds, bucket_super) -> tuple[np.ndarray, np.ndarray]:
    """Super-bucket and bucket of images by the thresholds of a plan (images outside its range go to the ends)."""
    w = np.asarray(w, dtype=np.int64)
    h = np.asarray(h, dtype=np.int64)
    sb = np.searchsorted(np.asarray(pixel_bounds, dtype=np.int64), w * h, side="right")
    first = {}
    for b, s in enumerate(bucket_super):
        first.setdefault(s, b)
    ar = aspect_key(w, h)
    bk = np.empty(w.size, dtype=np.int64)
    for s in np.unique(sb):
        sel = sb == s
        bk[sel] = first[int(s)] + np.searchsorted(np.asarray(aspect_bounds[s], dtype=np.float64), ar[sel],
                                                  side="right")
    return sb, bk


def padding_percent(padding: int, area: int) -> float:
    """Share of the padded tensors that is padding, in % (0 when there is nothing)."""
    total = padding + area
    return 100.0 * padding / total if total else 0.0
