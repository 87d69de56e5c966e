"""Downsampled ImageNet as the published loaders read it (PatrykChrabaszcz/Imagenet32_Scripts).

Their access pattern, reproduced (not their code): the batch loaders ``pickle.load`` the file
``<folder>/train_data_batch_<k>`` (k = 1..10) or ``<folder>/val_data``, take ``d['data']``, ``d['labels']``
and, for train, ``d['mean']``; scale by 1/255 and subtract the mean; shift labels to 0-based
(``i - 1``); rebuild images with ``np.dstack`` of the three colour planes and ``reshape(N, S, S, 3)``.
``imgnet.py`` opens ``<root>/imgnet<classes>/<file>`` with ``pickle.load(f, encoding='latin1')``, asserts
there are ``classes`` distinct labels, relabels them by sorted order and returns ``Image.fromarray(img)``.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import run_cli
from tests.downsample.imagenet_tree import MAP_CLSLOC, make_tree

LABEL_OF = {line.split()[0]: int(line.split()[1]) for line in MAP_CLSLOC.splitlines()}  # 1-based


def unpickle(path: str) -> dict:
    with open(path, "rb") as fo:
        return pickle.load(fo)


def load_databatch(folder: str, name: str, size: int):
    """The batch loaders' recipe: normalised float images (N, S, S, 3), 0-based labels, and raw uint8 images."""
    d = unpickle(os.path.join(folder, name))
    x, y = d["data"], d["labels"]
    xf = x / np.float32(255)
    if "mean" in d:
        xf -= d["mean"] / np.float32(255)  # in place, as theirs: stays float32
    y = [i - 1 for i in y]
    s2 = size * size
    images = np.dstack((x[:, :s2], x[:, s2:2 * s2], x[:, 2 * s2:])).reshape((x.shape[0], size, size, 3))
    xf = np.dstack((xf[:, :s2], xf[:, s2:2 * s2], xf[:, 2 * s2:])).reshape((x.shape[0], size, size, 3))
    return xf, y, images


def expected_images(tree: dict, split: str) -> dict[bytes, str]:
    """Pillow's box-filter S×S of every readable source file: HWC bytes → its wnid."""
    out = {}
    for rel, wnid in tree["files"][split]:
        if rel == tree["truncated"]:
            continue
        with Image.open(tree["src"] / rel) as im:
            out[np.asarray(im.convert("RGB").resize((tree["size"],) * 2, Image.BOX)).tobytes()] = wnid
    return out


def test_batch_loader_pattern_every_row(imagenet):
    folder, size = str(imagenet["out"]), imagenet["size"]
    for split, names in (("train", [f"train_data_batch_{k}" for k in range(1, 11)]), ("val", ["val_data"])):
        expected = expected_images(imagenet, split)
        seen = []
        for name in names:
            xf, y, images = load_databatch(folder, name, size)
            assert xf.shape == (len(y), size, size, 3) and xf.dtype == np.float32
            for image, label in zip(images, y):
                wnid = expected[image.tobytes()]  # KeyError: not the Pillow image of any source file
                assert label == LABEL_OF[wnid] - 1
                seen.append(image.tobytes())
        assert sorted(seen) == sorted(expected)  # every readable source image exactly once


@pytest.fixture(scope="module")
def imgnet3(tmp_path_factory) -> Path:
    """A larger 3-class tree (small images): imgnet.py learns the classes from the *first* batch alone, so
    that batch (a tenth of the rows) must hold every class, as a real ImageNet batch of 128k rows does."""
    root = tmp_path_factory.mktemp("imgnet")
    make_tree(root / "src", n_train=60, n_val=4, oddities=False, size=(96, 72))
    (root / "map_clsloc.txt").write_text(MAP_CLSLOC)
    proc = run_cli("downsample", root / "src", "--size", 16, "--out", root / "imgnet3", "--synsets",
                   root / "map_clsloc.txt", "--workers", 2, "--quiet")
    assert proc.returncode == 0, proc.stderr
    return root


def test_imgnet_dataset_pattern(imgnet3):
    root, classes, size = str(imgnet3), 3, 16
    for names in ([f"train_data_batch_{k}" for k in range(1, 11)], ["val_data"]):
        data, targets, relabeling = [], [], None
        for file_name in names:
            with open(os.path.join(root, "imgnet%d" % classes, file_name), "rb") as f:
                entry = pickle.load(f, encoding="latin1")
            y = [i - 1 for i in entry["labels"]]
            if relabeling is None:
                present = np.sort(np.unique(y))
                assert len(present) == classes
                relabeling = {int(b): i for i, b in enumerate(present)}
            targets += [relabeling[i] for i in y]
            data.append(entry["data"])
        images = np.vstack(data).reshape(-1, 3, size, size).transpose((0, 2, 3, 1))
        assert len(images) == len(targets) > 0
        for img, target in zip(images, targets):
            assert Image.fromarray(img).size == (size, size) and 0 <= target < classes
