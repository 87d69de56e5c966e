"""Degradation presets as data: a published pipeline's numbers in one frozen dataclass, any field overridable."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from methbuild.errors import UserError

KERNEL_KINDS = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")
RESIZE_MODES = ("area", "bilinear", "bicubic")


# Real-ESRGAN x4plus: xinntao/Real-ESRGAN options/train_realesrgan_x4plus.yml (kernels, noise, JPEG ranges;
# SPEC §8) and realesrgan/models/realesrgan_model.py (order of the steps, USM-sharpened GT as input).
@dataclass(frozen=True)
class DegradationPreset:
    name: str = "realesrgan"
    plain_bicubic: bool = False  # True: the LR is MATLAB-bicubic HR/s and nothing else
    usm_sharpen: bool = True  # the model degrades its USM-sharpened GT (USMSharp: radius 50 -> 51 px, weight 0.5, threshold 10)
    usm_size: int = 51
    usm_weight: float = 0.5
    usm_threshold: float = 10.0
    kernel_sizes: tuple[int, ...] = (7, 9, 11, 13, 15, 17, 19, 21)
    kernel_list: tuple[str, ...] = KERNEL_KINDS
    kernel_prob: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    sinc_prob: float = 0.1
    blur_sigma: tuple[float, float] = (0.2, 3.0)
    betag_range: tuple[float, float] = (0.5, 4.0)
    betap_range: tuple[float, float] = (1.0, 2.0)
    resize_prob: tuple[float, float, float] = (0.2, 0.7, 0.1)  # up, down, keep
    resize_range: tuple[float, float] = (0.15, 1.5)
    gaussian_noise_prob: float = 0.5
    noise_range: tuple[float, float] = (1.0, 30.0)
    poisson_scale_range: tuple[float, float] = (0.05, 3.0)
    gray_noise_prob: float = 0.4
    jpeg_range: tuple[float, float] = (30.0, 95.0)
    second_blur_prob: float = 0.8
    kernel_list2: tuple[str, ...] = KERNEL_KINDS
    kernel_prob2: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    sinc_prob2: float = 0.1
    blur_sigma2: tuple[float, float] = (0.2, 1.5)
    betag_range2: tuple[float, float] = (0.5, 4.0)
    betap_range2: tuple[float, float] = (1.0, 2.0)
    resize_prob2: tuple[float, float, float] = (0.3, 0.4, 0.3)
    resize_range2: tuple[float, float] = (0.3, 1.2)
    gaussian_noise_prob2: float = 0.5
    noise_range2: tuple[float, float] = (1.0, 25.0)
    poisson_scale_range2: tuple[float, float] = (0.05, 2.5)
    gray_noise_prob2: float = 0.4
    jpeg_range2: tuple[float, float] = (30.0, 95.0)
    final_sinc_prob: float = 0.8
    resize_modes: tuple[str, ...] = RESIZE_MODES

    def as_dict(self) -> dict:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in dataclasses.fields(self)}


PRESETS: dict[str, DegradationPreset] = {
    "realesrgan": DegradationPreset(),
    "bicubic": DegradationPreset(name="bicubic", plain_bicubic=True),
}

_PROBS = ("sinc_prob", "sinc_prob2", "gaussian_noise_prob", "gaussian_noise_prob2", "gray_noise_prob",
          "gray_noise_prob2", "second_blur_prob", "final_sinc_prob")
_RANGES = ("blur_sigma", "blur_sigma2", "betag_range", "betag_range2", "betap_range", "betap_range2", "resize_range",
           "resize_range2", "noise_range", "noise_range2", "poisson_scale_range", "poisson_scale_range2",
           "jpeg_range", "jpeg_range2")


def _parse(field: dataclasses.Field, text: str):
    default = field.default
    parts = [p.strip() for p in text.split(",") if p.strip()]
    try:
        if isinstance(default, bool):
            low = text.strip().lower()
            if low not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return low in ("true", "1", "yes")
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            value = float(text)
            if not math.isfinite(value):
                raise ValueError
            return value
        if isinstance(default, tuple):
            kind = type(default[0])
            values = tuple(kind(p) for p in parts)
            if kind is float and not all(math.isfinite(v) for v in values):
                raise ValueError
            if not values:
                raise ValueError
            return values
        return text
    except ValueError:
        raise UserError(f"--param {field.name}={text!r}: expected {_describe(default)}") from None


def _describe(default) -> str:
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, tuple):
        return f"comma-separated values like {','.join(map(str, default))}"
    return f"a {type(default).__name__} like {default}"


def preset_with(name: str, overrides: dict[str, str] | None = None) -> DegradationPreset:
    """The named preset with ``overrides`` (field name -> text, as ``--param NAME=VALUE``) applied and checked."""
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    preset = PRESETS[name]
    fields = {f.name: f for f in dataclasses.fields(DegradationPreset)}
    changes = {}
    for key, text in (overrides or {}).items():
        if key not in fields or key == "name":
            raise UserError(f"--param {key}: no such parameter; known: {', '.join(k for k in fields if k != 'name')}")
        changes[key] = _parse(fields[key], text)
    preset = dataclasses.replace(preset, **changes)
    check_preset(preset)
    return preset


def check_preset(p: DegradationPreset) -> None:
    """A UserError naming the first value a pipeline could not use."""
    for k in _PROBS:
        if not 0 <= getattr(p, k) <= 1:
            raise UserError(f"--param {k} must be a probability in [0, 1] (got {getattr(p, k)})")
    for k in _RANGES:
        r = getattr(p, k)
        if len(r) != 2 or r[0] > r[1] or r[0] < 0:
            raise UserError(f"--param {k} must be two numbers LOW,HIGH with 0 <= LOW <= HIGH (got {r})")
    for k in ("blur_sigma", "blur_sigma2"):
        if getattr(p, k)[0] <= 0:
            raise UserError(f"--param {k} must be above 0 (got {getattr(p, k)})")
    for k in ("jpeg_range", "jpeg_range2"):
        if not 1 <= getattr(p, k)[0] <= getattr(p, k)[1] <= 100:
            raise UserError(f"--param {k}: JPEG qualities are within 1..100 (got {getattr(p, k)})")
    for k in ("resize_range", "resize_range2"):
        if getattr(p, k)[0] <= 0 or getattr(p, k)[0] > 1 or getattr(p, k)[1] < 1:
            raise UserError(f"--param {k} must be LOW,HIGH with 0 < LOW <= 1 <= HIGH (got {getattr(p, k)})")
    for lk, pk in (("kernel_list", "kernel_prob"), ("kernel_list2", "kernel_prob2")):
        kinds, probs = getattr(p, lk), getattr(p, pk)
        unknown = [k for k in kinds if k not in KERNEL_KINDS]
        if unknown:
            raise UserError(f"--param {lk}: unknown kernel {unknown[0]!r}; known: {', '.join(KERNEL_KINDS)}")
        if len(probs) != len(kinds) or any(x < 0 for x in probs) or abs(sum(probs) - 1) > 1e-6:
            raise UserError(f"--param {pk} needs one non-negative probability per kernel of {lk} ({len(kinds)}), "
                            f"summing to 1 (got {probs})")
    for k in ("resize_prob", "resize_prob2"):
        probs = getattr(p, k)
        if len(probs) != 3 or any(x < 0 for x in probs) or abs(sum(probs) - 1) > 1e-6:
            raise UserError(f"--param {k} needs three probabilities (up, down, keep) summing to 1 (got {probs})")
    if not p.kernel_sizes or any(s < 1 or s % 2 == 0 or s > 101 for s in p.kernel_sizes):
        raise UserError(f"--param kernel_sizes must be odd sizes between 1 and 101 (got {p.kernel_sizes})")
    if not p.resize_modes or any(m not in RESIZE_MODES for m in p.resize_modes):
        raise UserError(f"--param resize_modes must be among {', '.join(RESIZE_MODES)} (got {p.resize_modes})")
    if p.usm_size < 1 or p.usm_size % 2 == 0 or p.usm_size > 401:
        raise UserError(f"--param usm_size must be an odd size up to 401 (got {p.usm_size})")
