"""Resize-to-bucket mode (``--mode resize``): aspect buckets at a fixed area, for training that resamples.

Diffusion-model training (NovelAI's aspect-ratio bucketing, kohya-ss ``BucketManager``) does not pad:
it resizes each image to a bucket of about the same area and the nearest aspect ratio, then crops
what sticks out. The buckets are every ``width × height`` whose sides are multiples of ``--step``,
with the largest height for each width such that ``width·height ≤ --area``, between 1:4 and 4:1.

Each image goes to the bucket nearest its aspect ratio (in log space), is scaled to *cover* the
bucket (scale = max(tw/w, th/h)) and centre-cropped; the crop box is given in the image's own pixels
(``left, top, right, bottom``, right/bottom exclusive), so a loader crops first then resizes the box
to the target size. With ``--no-upscale`` an image that would be enlarged keeps its size instead,
rounded down to multiples of ``--step`` (kohya's ``bucket_no_upscale``): its bucket is that size.

With ``--last merge`` a bucket holding fewer than batch × world size images hands them to the
neighbouring bucket (by aspect ratio) nearest to theirs, until every bucket is full (not with
``--no-upscale``, where a merge would enlarge images: small buckets are listed as problems instead).
"""

from __future__ import annotations

import numpy as np

MAX_ASPECT = 4.0


def bucket_shapes(area: int, step: int, max_aspect: float = MAX_ASPECT) -> list[tuple[int, int]]:
    """Bucket (width, height) pairs: multiples of ``step``, area ≤ ``area``, aspect within 1/max_aspect..max_aspect."""
    out = set()
    tw = step
    while tw * step <= area:
        th = (area // tw) // step * step
        if th >= step and 1 / max_aspect <= tw / th <= max_aspect:
            out.add((tw, th))
        tw += step
    # several widths can share a height (and vice versa): keep, per aspect, the largest area
    best: dict[float, tuple[int, int]] = {}
    for tw, th in out:
        k = round(tw / th, 6)
        if k not in best or tw * th > best[k][0] * best[k][1]:
            best[k] = (tw, th)
    return sorted(best.values(), key=lambda s: s[0] / s[1])


def crop_boxes(w: np.ndarray, h: np.ndarray, tw: np.ndarray, th: np.ndarray) -> tuple[np.ndarray, ...]:
    """Centre crop of each image, in its own pixels, with the aspect ratio of its target (tw × th)."""
    s = np.maximum(tw / w, th / h)  # scale that covers the target
    cw = np.minimum(w, np.maximum(1, np.round(tw / s))).astype(np.int64)
    ch = np.minimum(h, np.maximum(1, np.round(th / s))).astype(np.int64)
    left = (w - cw) // 2
    top = (h - ch) // 2
    return left, top, left + cw, top + ch


def resize_layout(w: np.ndarray, h: np.ndarray, opts):
    """(Layout with one group of target-size buckets, info, extra columns and summary) for make_plan."""
    from methbuild.buckets.plan import Group, Layout

    shapes = bucket_shapes(opts.area, opts.step)
    sw = np.array([s[0] for s in shapes], dtype=np.int64)
    sh = np.array([s[1] for s in shapes], dtype=np.int64)
    logs = np.log(sw / sh)
    lar = np.log(w / h)
    # nearest bucket in log aspect: searchsorted on the sorted bucket aspects, then the closer side
    pos = np.clip(np.searchsorted(logs, lar), 1, len(logs) - 1) if len(logs) > 1 else np.zeros(w.size, np.int64)
    if len(logs) > 1:
        left_closer = np.abs(lar - logs[pos - 1]) <= np.abs(logs[pos] - lar)
        pos = np.where(left_closer, pos - 1, pos)
    which = pos.astype(np.int64)
    lay = Layout(w, h, [], opts)
    notes = []

    if opts.upscale and opts.last == "merge":
        counts = np.bincount(which, minlength=len(shapes))
        while True:
            live = np.flatnonzero(counts)
            if live.size <= 1:
                break
            need = np.array([lay.need(int(sw[b]), int(sh[b])) for b in live])
            short = np.flatnonzero(counts[live] < need)
            if short.size == 0:
                break
            i = short[np.argmin(counts[live][short] / need[short])]
            b = live[i]
            nbrs = [live[j] for j in (i - 1, i + 1) if 0 <= j < live.size]
            target = min(nbrs, key=lambda n: abs(logs[n] - logs[b]))
            which[which == b] = target
            counts[target] += counts[b]
            counts[b] = 0

    tw, th = sw[which], sh[which]
    if not opts.upscale:
        grow = np.maximum(tw / w, th / h) > 1
        tw = np.where(grow, np.maximum(w // opts.step * opts.step, np.minimum(w, opts.step)), tw)
        th = np.where(grow, np.maximum(h // opts.step * opts.step, np.minimum(h, opts.step)), th)
        if grow.any():
            notes.append(f"{int(grow.sum())} image(s) smaller than their bucket keep their size (--no-upscale), "
                         f"rounded down to multiples of {opts.step}: each such size is a bucket of its own")
    left, top, right, bottom = crop_boxes(w, h, tw, th)

    # buckets: distinct target sizes, by aspect then area; one group holds them all
    key = np.unique(np.stack([tw, th], axis=1), axis=0)
    key = key[np.lexsort((key[:, 0] * key[:, 1], key[:, 0] / key[:, 1]))]
    bucket = _codes(tw, th, key)
    order = np.lexsort((np.arange(w.size), w / h, bucket))
    starts = np.flatnonzero(np.r_[True, bucket[order][1:] != bucket[order][:-1]]).tolist()
    lay.groups = [Group(order, starts)]
    lay.notes = notes
    sizes = [(int(key[bucket[order[s]]][0]), int(key[bucket[order[s]]][1])) for s in starts]

    ar_err = np.abs(np.log((tw / th) / (w / h)))
    kept = (right - left) * (bottom - top)
    px = w * h
    summary = {
        "bucket_shapes": [list(s) for s in shapes],
        "mean_aspect_error_percent": float(np.mean(np.expm1(ar_err)) * 100),
        "max_aspect_error_percent": float(np.max(np.expm1(ar_err)) * 100),
        "cropped_percent_of_pixels": float(100 * (px - kept).sum() / px.sum()),
        "mean_cropped_percent": float(np.mean(100 * (px - kept) / px)),
        "upscaled_images": int((np.maximum(tw / w, th / h) > 1).sum()),
        "definition": "aspect error of an image = |target aspect / image aspect - 1| (as exp|log ratio| - 1); "
                      "cropped = pixels outside the crop box / image pixels",
    }
    rows = {"padded_width": tw, "padded_height": th, "target_width": tw, "target_height": th,
            "crop_left": left, "crop_top": top, "crop_right": right, "crop_bottom": bottom}
    info = {"superbuckets": 1, "buckets": len(starts), "boundaries": "resize", "tried": None,
            "outlier_rule": "none"}
    return lay, info, {"shapes": [sizes], "rows": rows, "summary": summary}


def _codes(tw: np.ndarray, th: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Index in ``key`` (sorted target sizes) of each (tw, th), vectorised for large collections."""
    packed = tw.astype(np.int64) * (1 << 31) + th
    kp = key[:, 0].astype(np.int64) * (1 << 31) + key[:, 1]
    o = np.argsort(kp)
    return o[np.searchsorted(kp[o], packed)]
