"""The heavy commands on Dask (`--scheduler`) give byte-identical outputs to a local run."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from methbuild.io.lock import LOCK_NAME
from tests.conftest import assert_user_error, run_cli
from tests.downsample.imagenet_tree import make_tree

pytest.importorskip("dask.distributed")


def _hashes(folder: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """Every output's hash; the run lock (it names the process) is not an output."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name not in (*skip, LOCK_NAME) and ".cache" not in p.parts}


@pytest.fixture(scope="module")
def cluster():
    """A 2-worker Dask cluster on 127.0.0.1 (worker processes with nannies), shared by the tests."""
    from dask.distributed import Client, LocalCluster

    lc = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, silence_logs=40)
    client = Client(lc)
    yield lc.scheduler_address, client
    client.close()
    lc.close()


def test_ultramnist_local_cluster_equals_local_run(tmp_path: Path):
    a, b = tmp_path / "a", tmp_path / "b"
    args = ("ultramnist", "--n", 14, "--size", 512, "--seed", 2)
    assert run_cli(*args, "--out", a, "--workers", 2).returncode == 0
    proc = run_cli(*args, "--out", b, "--scheduler", "local:2")
    assert proc.returncode == 0, proc.stderr
    # summary.json and croissant.json record when the files were made (timings, the generation timeframe)
    assert _hashes(a, ("summary.json", "croissant.json")) == _hashes(b, ("summary.json", "croissant.json"))


def test_lowres_stats_downsample_on_a_cluster(cluster, tmp_path: Path):
    address, _ = cluster
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (520 + 16 * i, 700, 3), dtype=np.uint8)).save(src / f"{i}.jpg")
    for sched in (None, address):
        tag = "dask" if sched else "local"
        extra = ("--scheduler", sched) if sched else ()
        assert run_cli("lowres", src, "--out", tmp_path / f"lr-{tag}", "--quiet", *extra).returncode == 0
        assert run_cli("stats", src, tmp_path / "lr-local" / "X2", "--out", tmp_path / f"st-{tag}", "--no-figure",
                       "--workers", 2, *extra).returncode == 0
    assert _hashes(tmp_path / "lr-local") == _hashes(tmp_path / "lr-dask")
    for f in ("summary.csv", "images.parquet", "overlap.csv"):
        assert (tmp_path / "st-local" / f).read_bytes() == (tmp_path / "st-dask" / f).read_bytes()
    tree = tmp_path / "imagenet"
    make_tree(tree, n_train=5, n_val=1, oddities=False)
    for sched in (None, address):
        tag = "dask" if sched else "local"
        extra = ("--scheduler", sched) if sched else ()
        proc = run_cli("downsample", tree, "--size", 16, "--out", tmp_path / f"ds-{tag}", "--quiet", *extra)
        assert proc.returncode == 0, proc.stderr
    assert _hashes(tmp_path / "ds-local", ("downsample.json",)) == _hashes(tmp_path / "ds-dask", ("downsample.json",))


def test_a_killed_worker_does_not_lose_or_corrupt_anything(cluster, tmp_path: Path):
    address, client = cluster
    ref = tmp_path / "ref"
    n = 80
    args = ("ultramnist", "--n", n, "--size", 4000, "--split", "train", "--seed", 5)
    assert run_cli(*args, "--out", ref, "--workers", 2).returncode == 0
    out = tmp_path / "dask"
    proc = subprocess.Popen([sys.executable, "-m", "methbuild", *map(str, args), "--out", str(out), "--scheduler",
                             address], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:  # wait for the first finished image, then strike
        if (out / "train").is_dir() and any((out / "train").glob("*.jpeg")):
            break
        time.sleep(0.05)
    pids = client.run(os.getpid)  # {worker address: pid}
    os.kill(sorted(pids.values())[0], signal.SIGKILL)  # mid-run: its tasks are rescheduled on the other worker
    done_at_kill = len(list((out / "train").glob("*.jpeg")))
    assert 0 < done_at_kill < n
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert _hashes(ref, ("summary.json", "croissant.json")) == _hashes(out, ("summary.json", "croissant.json"))
    assert not list((out / "train").glob(".*tmp*"))
    client.wait_for_workers(2, timeout=60)  # the nanny restarts the killed worker


def test_a_scheduler_that_does_not_answer_is_a_clear_error(tmp_path: Path):
    t0 = time.time()
    proc = run_cli("ultramnist", "--n", 1, "--size", 512, "--out", tmp_path / "o", "--scheduler", "tcp://127.0.0.1:9")
    assert_user_error(proc, "tcp://127.0.0.1:9", "scheduler")
    assert time.time() - t0 < 30
    assert_user_error(run_cli("ultramnist", "--n", 1, "--size", 512, "--out", tmp_path / "o", "--scheduler", "local:0"),
                      "local:N")
    assert_user_error(run_cli("ultramnist", "--n", 1, "--size", 512, "--out", tmp_path / "o", "--scheduler", "bogus"),
                      "tcp://HOST:PORT")


def test_crawl_and_build_on_a_cluster(cluster, tmp_path: Path):
    """Crawl shards run on the workers (with 1/W of the rates), the state is written by the client."""
    from methbuild.met.mirror import serve_in_thread

    address, _ = cluster
    fast = ("--api-rate", 80, "--retry-base", 0.02, "--retries", 12, "--quiet")
    with serve_in_thread(synthetic=100, seed=6, mp_range=(0.3, 0.9), faults="all=0.1") as url:
        ids = tmp_path / "ids.txt"
        ids.write_text("\n".join(str(i) for i in sorted(url.mirror.records)[:40]) + "\n")
        for tag, extra in (("local", ()), ("dask", ("--scheduler", address))):
            proc = run_cli("crawl", "--ids", ids, "--out", tmp_path / f"crawl-{tag}", "--api-url", url, *fast, *extra)
            assert proc.returncode == 0, proc.stderr
    with serve_in_thread(synthetic=1500, seed=6, mp_range=(0.3, 0.9)) as url:
        met = tmp_path / "met"
        assert run_cli("met", "csv", "--url", url.root + "/MetObjects.csv", "--out", met / "MetObjects.csv").returncode == 0
        for tag, extra in (("local", ()), ("dask", ("--scheduler", address))):
            proc = run_cli("build", "meth-cultures", "--scale", 0.001, "--out", tmp_path / f"ds-{tag}",
                           "--met", tmp_path / f"met-{tag}", "--metadata", met / "MetObjects.csv", "--api-url", url,
                           "--api-rate", 80, "--quiet", *extra)
            assert proc.returncode == 0, proc.stderr
    a = (tmp_path / "crawl-local" / "objects.csv").read_bytes()
    assert a == (tmp_path / "crawl-dask" / "objects.csv").read_bytes()
    assert b"downloaded" in a
    assert not list((tmp_path / "crawl-dask" / "images").glob(".*tmp*"))
    csv = Path("MetH-Cultures") / "MetH-Cultures.csv"
    assert (tmp_path / "ds-local" / csv).read_bytes() == (tmp_path / "ds-dask" / csv).read_bytes()


def test_shards_split_the_politeness_budget():
    from methbuild.met.distributed import shard_args

    args = shard_args({"api_rate": 10.0, "image_rate": 20.0, "concurrency": 16, "api_url": "x"}, 4)
    assert args["api_rate"] == 2.5 and args["image_rate"] == 5.0 and args["concurrency"] == 4
