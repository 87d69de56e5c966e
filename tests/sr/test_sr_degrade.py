"""`methbuild sr degrade`: the Real-ESRGAN preset, per-image seeds, recorded parameters and bit-exact replay."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from methbuild.errors import UserError
from methbuild.sr import degrade
from methbuild.sr.presets import KERNEL_KINDS, PRESETS, preset_with
from tests.conftest import assert_user_error, run_cli
from tests.sr.helpers import image_folder, read

PRESET = PRESETS["realesrgan"]


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.name.startswith(".") and p.suffix in (".png", ".json")}


def test_kernels_sum_to_one_for_every_kind():
    rng = np.random.default_rng(0)
    for kind in KERNEL_KINDS:
        for _ in range(20):
            spec = {"kind": kind, "size": int(rng.choice(PRESET.kernel_sizes)), "sigma_x": rng.uniform(0.2, 3),
                    "sigma_y": rng.uniform(0.2, 3), "theta": rng.uniform(-math.pi, math.pi), "beta": rng.uniform(0.5, 4)}
            k = degrade.make_kernel(spec)
            assert k.shape == (spec["size"],) * 2 and abs(k.sum() - 1) < 1e-12 and (k >= 0).all()
    for omega in (math.pi / 5, 1.3, math.pi):
        k = degrade.make_kernel({"kind": "sinc", "size": 21, "omega_c": omega})
        assert abs(k.sum() - 1) < 1e-12 and np.allclose(k, k.T)
    assert degrade.make_kernel({"kind": "pulse", "size": 1}).sum() == 1


def test_bessel_j1_is_exact():
    scipy_special = pytest.importorskip("scipy.special")
    x = np.linspace(0, 60, 2001)
    assert np.max(np.abs(degrade.bessel_j1(x) - scipy_special.j1(x))) < 1e-12


def test_sampled_parameters_stay_within_the_preset_ranges():
    p = PRESET
    for i in range(400):
        rng = np.random.default_rng(np.random.SeedSequence(7, spawn_key=(i,)))
        s = degrade.sample_params(p, rng, 160, 200, 4)
        for key, sfx in (("blur1", ""), ("blur2", "2")):
            k = s[key]
            assert k["size"] in p.kernel_sizes
            if k["kind"] == "sinc":
                assert (math.pi / 3 if k["size"] < 13 else math.pi / 5) <= k["omega_c"] <= math.pi
                continue
            lo, hi = getattr(p, f"blur_sigma{sfx}")
            assert lo <= k["sigma_x"] <= hi and lo <= k["sigma_y"] <= hi and -math.pi <= k["theta"] <= math.pi
            if k["kind"].startswith("generalized"):
                assert getattr(p, f"betag_range{sfx}")[0] <= k["beta"] <= getattr(p, f"betag_range{sfx}")[1]
            if k["kind"].startswith("plateau"):
                assert getattr(p, f"betap_range{sfx}")[0] <= k["beta"] <= getattr(p, f"betap_range{sfx}")[1]
        for key, sfx in (("resize1", ""), ("resize2", "2")):
            r = s[key]
            lo, hi = getattr(p, f"resize_range{sfx}")
            assert lo <= r["factor"] <= hi and r["mode"] in p.resize_modes
        for key, sfx in (("noise1", ""), ("noise2", "2")):
            n = s[key]
            if n["kind"] == "gaussian":
                assert getattr(p, f"noise_range{sfx}")[0] <= n["sigma"] <= getattr(p, f"noise_range{sfx}")[1]
            else:
                lo, hi = getattr(p, f"poisson_scale_range{sfx}")
                assert lo <= n["scale"] <= hi
        assert 30 <= s["jpeg1"]["quality"] <= 95 and 30 <= s["final"]["jpeg"]["quality"] <= 95
        assert s["final"]["resize"]["size"] == [40, 50]
        if s["final"]["sinc"]["kind"] == "sinc":
            assert math.pi / 3 <= s["final"]["sinc"]["omega_c"] <= math.pi


def test_set_lr_is_hr_over_s_and_replay_is_bit_exact(tmp_path):
    src = image_folder(tmp_path / "src")
    out = tmp_path / "deg"
    proc = run_cli("sr", "degrade", src, "--out", out, "--seed", "5", "--scale", "4", "--quiet")
    assert proc.returncode == 0, proc.stderr
    for i in range(3):
        gt = read(out / "GT" / f"im{i}.png")
        lr = read(out / "LRrealesrganx4" / f"im{i}.png")
        assert gt.shape[0] == 4 * lr.shape[0] and gt.shape[1] == 4 * lr.shape[1] and gt.shape[2] == lr.shape[2]
        record = json.loads((out / "params" / f"im{i}.json").read_text())
        assert record["index"] == i and record["seed"] == 5 and record["hr"]["crop"][2:] == [gt.shape[1], gt.shape[0]]
        for key in ("blur1", "blur2", "resize1", "resize2", "noise1", "noise2", "jpeg1", "final"):
            assert key in record["steps"]
    original = (out / "LRrealesrganx4" / "im0.png").read_bytes()
    (out / "LRrealesrganx4" / "im0.png").unlink()
    proc = run_cli("sr", "degrade", "--replay", out / "params" / "im0.json")
    assert proc.returncode == 0 and "matches" in proc.stdout, proc.stdout + proc.stderr
    assert (out / "LRrealesrganx4" / "im0.png").read_bytes() == original
    # from the source alone (GT gone), into another file
    (out / "GT" / "im1.png").unlink()
    proc = run_cli("sr", "degrade", "--replay", out / "params" / "im1.json", "--out", tmp_path / "again.png")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "again.png").read_bytes() == (out / "LRrealesrganx4" / "im1.png").read_bytes()


def test_a_degradation_set_is_a_paired_folder_for_subimages(tmp_path):
    src = image_folder(tmp_path / "src", sizes=[(101, 83)], grey_last=False)
    out = tmp_path / "deg"
    assert run_cli("sr", "degrade", src, "--out", out, "--scale", "2", "--quiet").returncode == 0
    proc = run_cli("sr", "subimages", out, "--crop", "40", "--step", "20", "--quiet")
    assert proc.returncode == 0, proc.stderr
    gt = sorted(p.name for p in (out / "GT_sub").glob("*.png"))
    assert gt and gt == sorted(p.name for p in (out / "LRrealesrganx2_sub").glob("*.png"))
    assert read(out / "LRrealesrganx2_sub" / gt[-1]).shape == (20, 20, 3)


def test_same_seed_same_bytes_on_1_and_2_workers(tmp_path):
    src = image_folder(tmp_path / "src", sizes=[(90, 70), (64, 48), (77, 81), (40, 44)])
    for w in ("1", "2"):
        proc = run_cli("sr", "degrade", src, "--out", tmp_path / f"w{w}", "--seed", "11", "--workers", w, "--quiet")
        assert proc.returncode == 0, proc.stderr
    one, two = _files(tmp_path / "w1"), _files(tmp_path / "w2")
    assert len(one) == 12 and one == two
    proc = run_cli("sr", "degrade", src, "--out", tmp_path / "w3", "--seed", "12", "--workers", "2", "--quiet")
    assert _files(tmp_path / "w3")["params/im0.json"] != one["params/im0.json"]


def test_bicubic_preset_is_the_pairs_lr(tmp_path):
    src = image_folder(tmp_path / "src", sizes=[(66, 50)], grey_last=False)
    assert run_cli("sr", "pairs", src, "--out", tmp_path / "p", "--scales", "2", "--quiet").returncode == 0
    proc = run_cli("sr", "degrade", src, "--out", tmp_path / "d", "--preset", "bicubic", "--scale", "2", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert np.array_equal(read(tmp_path / "d" / "LRbicx2" / "im0.png"), read(tmp_path / "p" / "LRbicx2" / "im0.png"))


def test_param_overrides_and_bad_values(tmp_path):
    p = preset_with("realesrgan", {"noise_range": "2,2", "gaussian_noise_prob": "1", "sinc_prob": "0"})
    s = degrade.sample_params(p, np.random.default_rng(1), 64, 64, 4)
    assert s["noise1"] == {**s["noise1"], "kind": "gaussian", "sigma": 2.0}
    with pytest.raises(UserError, match="probability"):
        preset_with("realesrgan", {"sinc_prob": "1.5"})
    src = image_folder(tmp_path / "src", sizes=[(30, 30)], grey_last=False)
    assert_user_error(run_cli("sr", "degrade", src, "--out", tmp_path / "d", "--param", "nope=1"), "nope")
    assert_user_error(run_cli("sr", "degrade", src, "--out", tmp_path / "d", "--param", "jpeg_range=10,200"), "jpeg")
    assert_user_error(run_cli("sr", "degrade", src, "--out", tmp_path / "d", "--preset", "other"), "preset")
    assert_user_error(run_cli("sr", "degrade", "--replay", tmp_path / "missing.json"), "missing.json")
    assert_user_error(run_cli("sr", "degrade", src), "--out")
