"""`methbuild sr lmdb`: BasicSR's layout, read back equal to the PNGs, batches and map growth."""

from __future__ import annotations

import cv2
import lmdb
import numpy as np

from methbuild.sr.lmdb_layout import write_lmdb
from tests.conftest import assert_user_error, run_cli
from tests.sr.helpers import image_folder, read


def _read_back(path):
    """key -> pixels (RGB order, as the PNGs), the way BasicSR's lmdb backend gets and decodes values."""
    env = lmdb.open(str(path), readonly=True, lock=False, readahead=False)
    out = {}
    with env.begin() as txn:
        for key, value in txn.cursor():
            img = cv2.imdecode(np.frombuffer(value, np.uint8), cv2.IMREAD_UNCHANGED)
            out[key.decode("ascii")] = img[..., ::-1] if img.ndim == 3 else img[..., None]
    env.close()
    return out


def test_paired_folder_lmdbs_read_back_equal_to_the_pngs(tmp_path):
    src = image_folder(tmp_path / "src")
    root = tmp_path / "pairs"
    assert run_cli("sr", "pairs", src, "--out", root, "--scales", "2", "--quiet").returncode == 0
    assert run_cli("sr", "subimages", root, "--crop", "40", "--step", "20", "--quiet").returncode == 0
    proc = run_cli("sr", "lmdb", root, "--quiet")
    assert proc.returncode == 0, proc.stderr
    for name in ("GT", "LRbicx2", "GT_sub", "LRbicx2_sub"):
        db = root / f"{name}.lmdb"
        assert (db / "data.mdb").is_file() and (db / "lock.mdb").is_file()
        pngs = {p.stem: p for p in (root / name).glob("*.png")}
        got = _read_back(db)
        assert set(got) == set(pngs)  # keys: file names without extension
        for key, path in pngs.items():
            assert np.array_equal(got[key], read(path))
        meta = (db / "meta_info.txt").read_text().splitlines()
        assert meta == sorted(meta) and len(meta) == len(pngs)
        for line in meta:
            key = line.split(".")[0]  # how BasicSR's paired LMDB reader takes the key
            h, w, c = read(pngs[key]).shape
            assert line == f"{key}.png ({h},{w},{c}) 1"
    gt_keys = {ln.split(".")[0] for ln in (root / "GT_sub.lmdb" / "meta_info.txt").read_text().splitlines()}
    lq_keys = {ln.split(".")[0] for ln in (root / "LRbicx2_sub.lmdb" / "meta_info.txt").read_text().splitlines()}
    assert gt_keys == lq_keys and len(gt_keys) > 3


def test_tiny_map_grows_and_small_batches_commit(tmp_path):
    src = image_folder(tmp_path / "src", sizes=[(120, 90), (97, 61), (64, 64), (80, 33)])
    report = write_lmdb(src, tmp_path / "x.lmdb", map_size=1 << 16, batch_bytes=10_000, workers=1, progress=False)
    assert report.done == 4 and report.extra["grown"] >= 1
    got = _read_back(tmp_path / "x.lmdb")
    assert {k: v.shape for k, v in got.items()} == {p.stem: read(p).shape for p in src.glob("*.png")}
    # a rerun rebuilds the same set (no stale meta or keys)
    report = write_lmdb(src, tmp_path / "x.lmdb", workers=2, progress=False)
    assert report.done == 4 and len(_read_back(tmp_path / "x.lmdb")) == 4


def test_bad_names_and_out_are_refused(tmp_path):
    src = image_folder(tmp_path / "src", sizes=[(30, 30)], grey_last=False)
    assert_user_error(run_cli("sr", "lmdb", src, "--out", tmp_path / "x.db"), ".lmdb")
    (src / "a.b.png").write_bytes((src / "im0.png").read_bytes())
    assert_user_error(run_cli("sr", "lmdb", src), "a.b.png")
    assert not (tmp_path / "src.lmdb").exists()  # refused before anything was written
