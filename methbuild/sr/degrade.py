"""Frozen degradation sets: Real-ESRGAN's second-order pipeline applied offline, replayable bit for bit.

Real-ESRGAN degrades its training images on the fly (``realesrgan_model.py``), so no two papers test
on the same degraded images. Here the same steps run once, offline, with NumPy and OpenCV:

1. USM sharpening of the GT (the model degrades its sharpened GT);
2. blur with kernel 1 (iso / aniso / generalised / plateau Gaussian, or a sinc), resize up / down / keep
   by a random factor and mode (area, bilinear, bicubic), Gaussian or Poisson noise (colour or grey),
   JPEG;
3. blur with kernel 2 (with a probability), resize to ``HR/s × factor``, noise, then in random order
   [resize to exactly HR/s + final sinc (or nothing)] and JPEG; round to 8 bits.

Every random choice of image ``i`` comes from ``SeedSequence(seed, spawn_key=(i,))`` (so it does not
depend on the worker count or order) and is written to ``params/<stem>.json``; the noise fields are
drawn from seeds recorded there too. :func:`apply` is a pure function of (GT,
parameters), so ``--replay`` rebuilds the LR bit for bit. Differences from the GPU original, by
necessity: JPEG is libjpeg through OpenCV at the integer quality (the model uses a differentiable JPEG
at a real-valued quality); area / bilinear / bicubic are OpenCV's ``INTER_AREA`` / ``INTER_LINEAR`` /
``INTER_CUBIC`` (PyTorch's ``interpolate``: same kernels, a = −0.75 for bicubic).

The HR is cropped top-left to a multiple of the scale (the crop is recorded) and written as
``GT/<stem>.png``, so every LR is exactly HR/s. Preset ``bicubic``: the LR is MATLAB-bicubic HR/s
(:func:`methbuild.lowres.stream_pyramid`), the same pixels as ``sr pairs``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from methbuild import lowres
from methbuild.errors import UserError
from methbuild.executor import default_workers, run_tasks
from methbuild.io.atomic import atomic_write_text, clean_stale_temps, ensure_writable_dir
from methbuild.io.lowres_png import png_size, write_png
from methbuild.sr._common import GT_DIR, SrFailures, SrReport, short_reason
from methbuild.sr.presets import DegradationPreset

FORMAT = "methbuild-sr-degrade/1"
PARAMS_DIR = "params"
TABLE = "degrade.csv"


def _cv2():
    import cv2

    cv2.setNumThreads(1)  # one thread whatever the process: the same arithmetic in every worker and in a replay
    return cv2


# --------------------------------------------------------------------------- kernels


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    r = np.arange(size, dtype=np.float64) - size // 2
    return np.meshgrid(r, r)  # x varies along columns, y along rows


def _quadratic(size: int, sigma_x: float, sigma_y: float, theta: float) -> np.ndarray:
    """(x, y) Σ⁻¹ (x, y)ᵀ on the grid, Σ = R(θ) diag(σx², σy²) R(θ)ᵀ."""
    c, s = math.cos(theta), math.sin(theta)
    rot = np.array([[c, -s], [s, c]])
    inv = np.linalg.inv(rot @ np.diag([sigma_x ** 2, sigma_y ** 2]) @ rot.T)
    xx, yy = _grid(size)
    return inv[0, 0] * xx * xx + (inv[0, 1] + inv[1, 0]) * xx * yy + inv[1, 1] * yy * yy


def bessel_j1(x: np.ndarray) -> np.ndarray:
    """J₁(x) by Bessel's integral, (1/2π)∫₀^{2π} cos(τ − x sin τ) dτ: the mean over a full period of a
    smooth periodic function, exact to float64 with 256 samples for |x| up to ~100 (sinc kernels reach 45)."""
    tau = np.arange(256) * (2 * np.pi / 256)
    x = np.asarray(x, np.float64)
    return np.cos(tau - x[..., None] * np.sin(tau)).mean(axis=-1)


def make_kernel(spec: dict) -> np.ndarray:
    """The blur kernel a parameter record describes, float64, summing to 1."""
    kind, size = spec["kind"], int(spec["size"])
    if kind == "pulse":
        k = np.zeros((size, size))
        k[size // 2, size // 2] = 1.0
        return k
    if kind == "sinc":  # circular low-pass: cutoff·J1(cutoff·r)/(2πr), cutoff²/(4π) at the centre
        cutoff = float(spec["omega_c"])
        xx, yy = _grid(size)
        r = np.hypot(xx, yy)
        with np.errstate(invalid="ignore", divide="ignore"):
            k = cutoff * bessel_j1(cutoff * r) / (2 * np.pi * r)
        k[size // 2, size // 2] = cutoff ** 2 / (4 * np.pi)
        return k / k.sum()
    d = _quadratic(size, spec["sigma_x"], spec["sigma_y"], spec["theta"])
    if kind in ("iso", "aniso"):
        k = np.exp(-0.5 * d)
    elif kind.startswith("generalized"):
        k = np.exp(-0.5 * d ** spec["beta"])
    elif kind.startswith("plateau"):
        k = 1.0 / (d ** spec["beta"] + 1.0)
    else:
        raise ValueError(f"unknown kernel kind {kind!r}")
    return k / k.sum()


# --------------------------------------------------------------------------- sampling


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _sample_kernel(rng, p: DegradationPreset, second: bool) -> dict:
    sfx = "2" if second else ""
    size = int(rng.choice(p.kernel_sizes))
    if rng.random() < getattr(p, f"sinc_prob{sfx}"):
        lo = math.pi / 3 if size < 13 else math.pi / 5  # small kernels: no cut-off below π/3 (ringing)
        return {"kind": "sinc", "size": size, "omega_c": _u(rng, lo, math.pi)}
    kinds, probs = getattr(p, f"kernel_list{sfx}"), np.asarray(getattr(p, f"kernel_prob{sfx}"), np.float64)
    kind = str(kinds[int(rng.choice(len(kinds), p=probs / probs.sum()))])
    sigma = getattr(p, f"blur_sigma{sfx}")
    spec = {"kind": kind, "size": size, "sigma_x": _u(rng, *sigma)}
    if kind.endswith("iso") and not kind.endswith("aniso"):
        spec.update(sigma_y=spec["sigma_x"], theta=0.0)
    else:
        spec.update(sigma_y=_u(rng, *sigma), theta=_u(rng, -math.pi, math.pi))
    if kind.startswith(("generalized", "plateau")):
        lo, hi = getattr(p, f"betag_range{sfx}" if kind.startswith("generalized") else f"betap_range{sfx}")
        spec["beta"] = _u(rng, lo, 1.0) if rng.random() < 0.5 else _u(rng, 1.0, hi)  # half below 1, half above
    return spec


def _sample_resize(rng, p: DegradationPreset, second: bool) -> dict:
    sfx = "2" if second else ""
    probs = np.asarray(getattr(p, f"resize_prob{sfx}"), np.float64)
    lo, hi = getattr(p, f"resize_range{sfx}")
    direction = ("up", "down", "keep")[int(rng.choice(3, p=probs / probs.sum()))]
    factor = _u(rng, 1.0, hi) if direction == "up" else _u(rng, lo, 1.0) if direction == "down" else 1.0
    return {"direction": direction, "factor": factor, "mode": str(rng.choice(p.resize_modes))}


def _sample_noise(rng, p: DegradationPreset, second: bool) -> dict:
    sfx = "2" if second else ""
    gaussian = rng.random() < getattr(p, f"gaussian_noise_prob{sfx}")
    if gaussian:
        spec = {"kind": "gaussian", "sigma": _u(rng, *getattr(p, f"noise_range{sfx}"))}
    else:
        spec = {"kind": "poisson", "scale": _u(rng, *getattr(p, f"poisson_scale_range{sfx}"))}
    spec["grey"] = bool(rng.random() < getattr(p, f"gray_noise_prob{sfx}"))
    spec["seed"] = int(rng.integers(0, 2 ** 63 - 1))  # the noise field itself is drawn from this at apply time
    return spec


def _quality(rng, lo: float, hi: float) -> int:
    return int(round(_u(rng, lo, hi)))


def sample_params(p: DegradationPreset, rng: np.random.Generator, height: int, width: int, scale: int) -> dict:
    """Every random choice of one image's degradation, as a JSON-ready dict (sizes included)."""
    k1 = _sample_kernel(rng, p, False)
    k2 = _sample_kernel(rng, p, True)
    r1 = _sample_resize(rng, p, False)
    r1["size"] = [max(1, int(height * r1["factor"])), max(1, int(width * r1["factor"]))]  # floor, as interpolate
    n1 = _sample_noise(rng, p, False)
    q1 = _quality(rng, *p.jpeg_range)
    second_blur = bool(rng.random() < p.second_blur_prob)
    r2 = _sample_resize(rng, p, True)
    r2["size"] = [max(1, int(height / scale * r2["factor"])), max(1, int(width / scale * r2["factor"]))]
    n2 = _sample_noise(rng, p, True)
    order = "resize_sinc_then_jpeg" if rng.random() < 0.5 else "jpeg_then_resize_sinc"
    final_mode = str(rng.choice(p.resize_modes))
    if rng.random() < p.final_sinc_prob:
        size = int(rng.choice(p.kernel_sizes))
        sinc = {"kind": "sinc", "size": size, "omega_c": _u(rng, math.pi / 3, math.pi)}
    else:
        sinc = {"kind": "pulse", "size": 1}
    q2 = _quality(rng, *p.jpeg_range2)
    return {
        "usm": {"applied": p.usm_sharpen, "size": p.usm_size, "weight": p.usm_weight, "threshold": p.usm_threshold},
        "blur1": k1, "resize1": r1, "noise1": n1, "jpeg1": {"quality": q1},
        "blur2": {**k2, "applied": second_blur}, "resize2": r2, "noise2": n2,
        "final": {"order": order, "resize": {"mode": final_mode, "size": [height // scale, width // scale]},
                  "sinc": sinc, "jpeg": {"quality": q2}},
    }


# --------------------------------------------------------------------------- applying


def _as3(a: np.ndarray, bands: int) -> np.ndarray:
    return a.reshape(a.shape[0], a.shape[1], bands)  # OpenCV drops a single channel's axis


def _filter(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    cv2 = _cv2()
    # reflect without repeating the edge pixel: PyTorch's "reflect" padding in BasicSR's filter2D
    return _as3(cv2.filter2D(img, -1, kernel.astype(np.float32), borderType=cv2.BORDER_REFLECT_101), img.shape[2])


def _usm(img: np.ndarray, spec: dict) -> np.ndarray:
    """Unsharp masking as Real-ESRGAN's USMSharp: sharpen by ``weight`` × (image − Gaussian blur) where the
    residual exceeds ``threshold``/255, blended through a blurred mask. In place where it can: four
    image-sized float buffers at most (a 12 MP image is 144 MB per buffer)."""
    cv2 = _cv2()
    g = cv2.getGaussianKernel(int(spec["size"]), 0)
    residual = _as3(cv2.sepFilter2D(img, -1, g, g, borderType=cv2.BORDER_REFLECT_101), img.shape[2])
    np.subtract(img, residual, out=residual)
    mask = (np.abs(residual) > np.float32(spec["threshold"] / 255)).astype(np.float32)
    soft = _as3(cv2.sepFilter2D(mask, -1, g, g, borderType=cv2.BORDER_REFLECT_101), img.shape[2])
    del mask
    sharp = residual
    sharp *= np.float32(spec["weight"])
    sharp += img
    np.clip(sharp, 0, 1, out=sharp)
    sharp -= img  # soft·sharp + (1 − soft)·img = img + soft·(sharp − img)
    sharp *= soft
    sharp += img
    return sharp


_MODES = {"area": "INTER_AREA", "bilinear": "INTER_LINEAR", "bicubic": "INTER_CUBIC"}


def _resize(img: np.ndarray, size: Sequence[int], mode: str) -> np.ndarray:
    cv2 = _cv2()
    h, w = int(size[0]), int(size[1])
    if (h, w) == img.shape[:2]:
        return img  # interpolate at factor 1 is the identity
    return _as3(cv2.resize(img, (w, h), interpolation=getattr(cv2, _MODES[mode])), img.shape[2])


def _grey(img: np.ndarray) -> np.ndarray:
    if img.shape[2] == 1:
        return img
    return (img @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]


NOISE_BLOCK = 1 << 22  # values drawn per block: a fixed split, so the same seed always gives the same field


def _levels(base: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(base * 255), 0, 255).astype(np.uint8)


def _noise(img: np.ndarray, spec: dict) -> np.ndarray:
    """``img`` plus Gaussian or Poisson noise, clipped to [0, 1]; the field drawn from ``spec["seed"]``
    a block of rows at a time (a Poisson draw is int64: a whole enlarged 12 MP field would be ~0.6 GB)."""
    rng = np.random.default_rng(spec["seed"])
    h, w, c = img.shape
    grey = spec["grey"] and c == 3
    bands = 1 if spec["grey"] else c
    rows = max(1, NOISE_BLOCK // (w * bands))
    vals = 0.0
    if spec["kind"] == "poisson":  # counts at 2^ceil(log2(distinct levels)) levels, as BasicSR's Poisson noise
        seen = np.zeros(256, np.int64)
        for y in range(0, h, rows):
            block = img[y: y + rows]
            seen += np.bincount(_levels(_grey(block) if grey else block).ravel(), minlength=256)
        vals = 2.0 ** math.ceil(math.log2(max(int(np.count_nonzero(seen)), 1)))
    out = np.empty_like(img)
    for y in range(0, h, rows):
        block = img[y: y + rows]
        n = block.shape[0]
        if spec["kind"] == "gaussian":
            noise = rng.standard_normal((n, w, bands), dtype=np.float32)
            noise *= np.float32(spec["sigma"] / 255.0)
        else:
            base = _grey(block) if grey else block
            rounded = _levels(base).astype(np.float32) / 255
            noise = rng.poisson(rounded * vals).astype(np.float32) / np.float32(vals) - rounded
            noise *= np.float32(spec["scale"])
        np.add(block, noise, out=out[y: y + n])  # a grey field is broadcast over the bands
    np.clip(out, 0, 1, out=out)
    return out


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    cv2 = _cv2()
    u8 = np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)
    bgr = u8[..., ::-1] if u8.shape[2] == 3 else u8[..., 0]
    ok, data = cv2.imencode(".jpg", np.ascontiguousarray(bgr), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("JPEG encoding failed")
    out = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    out = out[..., ::-1] if img.shape[2] == 3 else out[..., None]
    return out.astype(np.float32) / 255


def apply(hr: np.ndarray, params: dict) -> np.ndarray:
    """The LR of ``hr`` (H × W × bands uint8) under ``params`` (from :func:`sample_params`): a pure function."""
    img = hr.astype(np.float32)
    img /= 255
    if params["usm"]["applied"]:
        img = _usm(img, params["usm"])
    img = _filter(img, make_kernel(params["blur1"]))
    img = _resize(img, params["resize1"]["size"], params["resize1"]["mode"])
    img = _noise(img, params["noise1"])
    img = _jpeg(img, params["jpeg1"]["quality"])
    if params["blur2"]["applied"]:
        img = _filter(img, make_kernel(params["blur2"]))
    img = _resize(img, params["resize2"]["size"], params["resize2"]["mode"])
    img = _noise(img, params["noise2"])
    final = params["final"]

    def resize_sinc(x):
        x = _resize(x, final["resize"]["size"], final["resize"]["mode"])
        return x if final["sinc"]["kind"] == "pulse" else _filter(x, make_kernel(final["sinc"]))

    if final["order"] == "resize_sinc_then_jpeg":
        img = _jpeg(np.clip(resize_sinc(img), 0, 1), final["jpeg"]["quality"])
    else:
        img = resize_sinc(_jpeg(img, final["jpeg"]["quality"]))
    return np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)


def bicubic_lr(hr: np.ndarray, scale: int) -> np.ndarray:
    """MATLAB-bicubic HR/s of an H × W × bands uint8 array whose sides are multiples of ``scale``."""
    pyvips = lowres._vips()
    h, w, bands = hr.shape
    image = pyvips.Image.new_from_memory(np.ascontiguousarray(hr).data, w, h, bands, "uchar")
    parts: list[np.ndarray] = []
    lowres.stream_pyramid(image, (scale,), lambda s, rows: parts.append(rows.copy()))
    return np.concatenate(parts)


def degrade(hr: np.ndarray, params: dict, scale: int) -> np.ndarray:
    """The LR of ``hr`` for a parameter record: plain bicubic or the second-order pipeline."""
    if params.get("kind") == "bicubic":
        return bicubic_lr(hr, scale)
    return apply(hr, params)


def pixels_sha256(pixels: np.ndarray) -> str:
    """A digest of the LR pixels and their shape: independent of the PNG encoder."""
    h = hashlib.sha256(repr(tuple(pixels.shape)).encode())
    h.update(np.ascontiguousarray(pixels).data)
    return h.hexdigest()


# --------------------------------------------------------------------------- one image, the set


def lr_dir_name(preset: DegradationPreset, scale: int) -> str:
    return f"LRbicx{scale}" if preset.plain_bicubic else f"LR{preset.name}x{scale}"


@dataclass(frozen=True)
class DegradeTask:
    source: str
    stem: str
    index: int
    out: str
    scale: int
    seed: int
    preset: DegradationPreset


def _read_hr(source: str, scale: int) -> tuple[np.ndarray, list[str], tuple[int, int], tuple[int, int, int, int]]:
    pyvips = lowres._configure_vips(1)
    # the same opener as lowres: header only, the pixel limit checked before the whole image is decoded
    with lowres.open_hr(source) as image:
        try:
            hr, notes = lowres.prepare(image)
            box = lowres.crop_box(hr.width, hr.height, scale)
            if box[2] == 0 or box[3] == 0:
                raise ValueError(f"image is {hr.width}x{hr.height}, smaller than the scale {scale}")
            pixels = hr.crop(*box).numpy().reshape(box[3], box[2], hr.bands)
        except pyvips.Error as exc:
            raise ValueError(f"cannot decode: {lowres._vips_reason(exc)}") from None
    return np.ascontiguousarray(pixels), notes, (hr.width, hr.height), box


def make_degraded(task: DegradeTask) -> dict:
    """Write ``GT/<stem>.png``, the LR and ``params/<stem>.json`` of one image; return its table row."""
    out = Path(task.out)
    lr_rel = f"{lr_dir_name(task.preset, task.scale)}/{task.stem}.png"
    gt_rel = f"{GT_DIR}/{task.stem}.png"
    json_path = out / PARAMS_DIR / f"{task.stem}.json"
    kept = _kept(json_path, task, out / gt_rel, out / lr_rel)
    if kept is not None:
        return {**kept, "status": "already complete"}
    hr, notes, (width, height), box = _read_hr(task.source, task.scale)
    if task.preset.plain_bicubic:
        steps = {"kind": "bicubic"}
    else:
        rng = np.random.default_rng(np.random.SeedSequence(task.seed, spawn_key=(task.index,)))
        steps = sample_params(task.preset, rng, box[3], box[2], task.scale)
    lr = degrade(hr, steps, task.scale)
    if lr.shape[:2] != (box[3] // task.scale, box[2] // task.scale):  # LR·s = HR: never written otherwise
        raise RuntimeError(f"LR is {lr.shape[1]}x{lr.shape[0]}, not the {box[2]}x{box[3]} GT / {task.scale}")
    write_png(out / gt_rel, hr, fsync=False)
    write_png(out / lr_rel, lr, fsync=False)
    record = {"format": FORMAT, "stem": task.stem, "source": os.path.abspath(task.source), "index": task.index, "seed": task.seed,
              "scale": task.scale, "preset": task.preset.as_dict(),
              "hr": {"width": width, "height": height, "bands": int(hr.shape[2]), "crop": list(box),
                     "notes": notes},
              "gt": gt_rel, "lr": lr_rel, "lr_size": [int(lr.shape[1]), int(lr.shape[0])],
              "lr_pixels_sha256": pixels_sha256(lr), "steps": steps}
    atomic_write_text(json_path, _json_lines(record))  # last: its presence means the image is done
    return _row(record, "written")


def _json_lines(record: dict) -> str:
    """One top-level key per line, each value compact: readable in a terminal, diffable line by line."""
    return "{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in record.items()) + "\n}\n"


def _row(record: dict, status: str) -> dict:
    return {"source": record["source"], "stem": record["stem"], "status": status, "index": record["index"],
            "width": record["hr"]["width"], "height": record["hr"]["height"], "crop_width": record["hr"]["crop"][2],
            "crop_height": record["hr"]["crop"][3], "gt": record["gt"], "lr": record["lr"],
            "params": f"{PARAMS_DIR}/{record['stem']}.json", "error": ""}


def _kept(json_path: Path, task: DegradeTask, gt: Path, lr: Path) -> dict | None:
    """The row of an image an earlier run finished with the same seed, index, scale and preset."""
    try:
        record = json.loads(json_path.read_text(encoding="utf-8"))
        same = (record.get("format") == FORMAT and record["seed"] == task.seed and record["index"] == task.index
                and record["scale"] == task.scale and record["preset"] == task.preset.as_dict()
                and record["source"] == os.path.abspath(task.source))
        if not same or json_path.stat().st_mtime_ns < os.stat(task.source).st_mtime_ns:
            return None
        crop = record["hr"]["crop"]
        if png_size(gt) != (crop[2], crop[3]) or png_size(lr) != tuple(record["lr_size"]):
            return None
        return _row(record, "already complete")
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_degraded(sources: Sequence[str | os.PathLike], out: str | os.PathLike, *, preset: DegradationPreset,
                   scale: int = 4, seed: int = 0, workers: int | None = None, strict: bool = False,
                   progress: bool = True) -> SrReport:
    """Degrade every source: ``out/GT/``, ``out/<LR folder>/``, ``out/params/<stem>.json``, ``out/degrade.csv``.

    Image ``i`` (its position in ``sources``) is degraded with ``SeedSequence(seed, spawn_key=(i,))``:
    the output does not depend on ``workers``. Finished images are kept on a rerun."""
    started = time.perf_counter()
    if int(scale) != scale or scale < 1:
        raise UserError(f"--scale must be an integer of at least 1 (got {scale})")
    if not 0 <= seed < 2 ** 63:
        raise UserError(f"--seed must be a non-negative integer below 2**63 (got {seed})")
    paths = [Path(p) for p in sources]
    if not paths:
        raise UserError("no images to process")
    lowres.check_stems(paths)
    unique = list(dict.fromkeys(paths))
    out = ensure_writable_dir(out, "--out folder")
    for name in (GT_DIR, lr_dir_name(preset, scale), PARAMS_DIR):
        clean_stale_temps(ensure_writable_dir(out / name, "output folder"))
    tasks = [DegradeTask(str(p), p.stem, i, str(out), int(scale), int(seed), preset) for i, p in enumerate(unique)]
    results = run_tasks(make_degraded, tasks, workers=min(workers or default_workers(), len(tasks)),
                        desc="sr degrade", unit="img", progress=progress)
    report = SrReport()
    rows = []
    for task, res in zip(tasks, results):
        if res.ok:
            rows.append(res.value)
            if res.value["status"] == "written":
                report.done += 1
            else:
                report.skipped += 1
        else:
            reason = short_reason(res.error)
            rows.append({"source": task.source, "stem": task.stem, "status": "failed", "index": task.index,
                         "error": reason})
            report.failed += 1
            report.failures.append((task.source, reason))
    import pandas as pd

    from methbuild.io.tables import write_table

    columns = ["source", "stem", "status", "index", "width", "height", "crop_width", "crop_height", "gt", "lr",
               "params", "error"]
    df = pd.DataFrame(rows, columns=columns)
    for c in ("index", "width", "height", "crop_width", "crop_height"):
        df[c] = pd.to_numeric(df[c], errors="coerce").astype("Int64")
    report.table = write_table(df, out / TABLE)
    report.extra["lr_dir"] = lr_dir_name(preset, scale)
    report.seconds = time.perf_counter() - started
    if strict and report.failed:
        raise SrFailures(report)
    return report


@dataclass
class Replay:
    path: Path  # where the LR was written
    matches: bool  # its pixels are the recorded ones
    sha256: str


def replay(params_json: str | os.PathLike, out: str | os.PathLike | None = None) -> Replay:
    """Rebuild one LR from its ``params/<stem>.json``: from the set's GT (or the source when the GT is gone),
    written to ``out`` (default: the set's LR path); ``matches`` tells whether its pixels are the recorded ones."""
    params_json = Path(params_json)
    try:
        record = json.loads(params_json.read_text(encoding="utf-8"))
        if record.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} record")
        root = params_json.resolve().parent.parent
        scale, steps, crop = int(record["scale"]), record["steps"], record["hr"]["crop"]
        gt, lr_rel, expected = root / record["gt"], record["lr"], record["lr_pixels_sha256"]
        source = record["source"]
    except OSError as exc:
        raise UserError(f"cannot read {str(params_json)!r}: {exc.strerror or exc}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{str(params_json)!r} is not a degradation record: {exc}") from None
    if png_size(gt) == (crop[2], crop[3]):
        hr = lowres._vips().Image.new_from_file(str(gt), access="sequential").numpy()
        hr = hr.reshape(crop[3], crop[2], -1)
    elif os.path.isfile(source):
        hr, _, _, _ = _read_hr(source, scale)
    else:
        raise UserError(f"neither the GT {str(gt)!r} nor the source {source!r} is there to replay from")
    lr = degrade(np.ascontiguousarray(hr), steps, scale)
    target = Path(out) if out is not None else root / lr_rel
    ensure_writable_dir(target.parent, "output folder")
    write_png(target, lr, fsync=False)
    digest = pixels_sha256(lr)
    return Replay(target, digest == expected, digest)

