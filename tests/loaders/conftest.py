"""Small built outputs, made once per session through the commands a user types, for the loader tests.

Layouts follow the authors' repositories, so their path joins can be reproduced as they are:
MetH-baselines keeps ``<project>/datasets/<Name>/{<Name>.csv,data/}``; transmuteAI/ultramnist reads
``<cwd>/ultra-mnist/{train.csv,sample_submission.csv,train/,test/}``; Imagenet32_Scripts' ``imgnet.py``
reads ``<root>/imgnet<classes>/{train_data_batch_<k>,val_data}``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from methbuild.met.mirror import serve_in_thread
from tests.conftest import run_cli
from tests.downsample.imagenet_tree import MAP_CLSLOC, make_tree

# A few images per class: Cultures 1/1/1 of 15 classes, Period 1 train per bin + 1 validation + 14 test.
METH_SCALES = {"meth-cultures": ("MetH-Cultures", 0.001), "meth-period": ("MetH-Period", 0.0005)}


@dataclass
class Built:
    project: Path  # the folder that holds datasets/
    met: Path  # --met (MetObjects.csv and the crawl)
    started: float  # time.time() before the build
    finished: float

    @property
    def datasets(self) -> Path:
        return self.project / "datasets"


def _build(mirror, project: Path, *args) -> None:
    met = project / "met"
    proc = run_cli("met", "csv", "--url", mirror.root + "/MetObjects.csv", "--out", met / "MetObjects.csv")
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("build", *args, "--out", project / "datasets", "--met", met, "--api-url", mirror, "--quiet",
                   "--api-rate", 80)
    assert proc.returncode == 0, proc.stderr


@pytest.fixture(scope="session")
def meth(tmp_path_factory) -> Built:
    """MetH-Cultures (classification) and MetH-Period (regression), 0.3-1.2 MP originals."""
    project = tmp_path_factory.mktemp("meth-baselines")
    started = time.time()
    with serve_in_thread(synthetic=1500, seed=3, mp_range=(0.3, 1.2)) as mirror:
        for name, (_, scale) in METH_SCALES.items():
            _build(mirror, project, name, "--scale", scale)
    return Built(project, project / "met", started, time.time())


@pytest.fixture(scope="session")
def meth_sr(tmp_path_factory) -> Built:
    """MetH-SR: 10 originals just above 12 MP (8 train, 2 test) and the LR copies of the test ones."""
    project = tmp_path_factory.mktemp("meth-sr")
    started = time.time()
    with serve_in_thread(synthetic=200, seed=3, mp_range=(12.2, 12.6), image_pool=4) as mirror:
        _build(mirror, project, "meth-sr", "--scale", 0.0005, "--workers", 2, "--sr-pairs")
    return Built(project, project / "met", started, time.time())


@pytest.fixture(scope="session")
def ultramnist(tmp_path_factory) -> Built:
    """28 train + 28 test images of 512x512 in ``<cwd>/ultra-mnist``, as the reference scripts expect."""
    cwd = tmp_path_factory.mktemp("ultramnist-cwd")
    started = time.time()
    proc = run_cli("ultramnist", "--n", 28, "--size", 512, "--out", cwd / "ultra-mnist", "--workers", 2)
    assert proc.returncode == 0, proc.stderr
    return Built(cwd, cwd, started, time.time())


@pytest.fixture(scope="session")
def imagenet(tmp_path_factory) -> dict:
    """A 3-class ImageNet-like tree downsampled to 16x16 into ``<root>/imgnet3`` (exact Pillow box filter)."""
    root = tmp_path_factory.mktemp("imagenet")
    tree = make_tree(root / "src")
    (root / "map_clsloc.txt").write_text(MAP_CLSLOC)
    proc = run_cli("downsample", root / "src", "--size", 16, "--out", root / "imgnet3", "--exact", "--synsets",
                   root / "map_clsloc.txt", "--workers", 2, "--quiet")
    assert proc.returncode == 0, proc.stderr
    return dict(tree, root=root, src=root / "src", out=root / "imgnet3", size=16)
