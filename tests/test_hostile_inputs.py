"""Hostile and unlucky input, through the command a user types (issue 13).

The families: non-finite floats and negative seeds on every command, integers beyond any sane bound,
corrupt inputs, outputs whose names are taken, two runs on one folder, Ctrl-C / SIGTERM, a full disk.
Each case is one clear line on stderr and a non-zero exit, never a traceback, never a half-written
file under a final name.
"""

from __future__ import annotations

import gzip
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import click
import numpy as np
import pytest
from PIL import Image

from methbuild.cli import LazyGroup, cli as group
from methbuild.cli._options import INT64_MAX, FiniteFloat
from methbuild.io.lock import LOCK_NAME, folder_lock
from methbuild.synth.mnist import load_pool
from tests.conftest import assert_user_error, resize_disk, run_cli

INTERRUPTED = "methbuild: interrupted; rerun the same command to resume"


@pytest.fixture
def invoke(capsys):
    """Run ``methbuild ARGS`` in this process through :func:`methbuild.cli.main` (the console entry
    point), for the many cases refused before any work; a subprocess costs seconds of imports each."""
    from methbuild.cli import main

    def run(*args) -> subprocess.CompletedProcess:
        capsys.readouterr()
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out.out, out.err)

    return run


# ----------------------------------------------------------------------------- every command's options


def _commands():
    ctx = click.Context(group)
    assert isinstance(group, LazyGroup)
    found = []

    def walk(cmd, path):
        found.append((" ".join(path), cmd))
        if isinstance(cmd, click.Group):
            for name in cmd.list_commands(ctx):
                walk(cmd.get_command(ctx, name), path + [name])

    walk(group, ["methbuild"])
    return found


def _types(param):
    t = param.type
    return list(t.types) if isinstance(t, click.Tuple) else [t]


def test_every_float_option_is_finite_and_every_seed_non_negative():
    """One shared float type refuses nan/inf everywhere; every --seed is an integer 0..2**63-1."""
    offenders = []
    commands = _commands()
    assert len(commands) > 10  # the walk reached the subcommands
    for path, cmd in commands:
        for p in cmd.params:
            for t in _types(p):
                if isinstance(t, click.types.FloatParamType) and not isinstance(t, FiniteFloat):
                    offenders.append(f"`{path}` {'/'.join(p.opts)}: {type(t).__name__}, not FiniteFloat")
            if p.name == "seed":
                t = p.type
                ok = (isinstance(t, click.IntRange) and t.min == 0 and not t.min_open and t.max is not None
                      and t.max <= INT64_MAX)
                if not ok:
                    offenders.append(f"`{path}` {'/'.join(p.opts)}: {t!r}, not a non-negative bounded seed")
    assert not offenders, "\n".join(offenders)


def _with_out(args: list[str], tmp_path: Path) -> list:
    return [*args, "--out", tmp_path / "out", *(["--met", tmp_path / "met"] if args[0] == "build" else [])]


@pytest.mark.parametrize("args, needle", [
    (["ultramnist", "--seed", "-1"], "--seed"),
    (["build", "meth-medium", "--seed", "-1"], "--seed"),
    (["build", "meth-medium", "--scale", "nan"], "--scale"),
    (["build", "meth-medium", "--api-rate", "nan"], "--api-rate"),
])
def test_negative_seed_and_nan_are_one_line(tmp_path: Path, args, needle):
    """The installed command (a subprocess): exit 2, one line, nothing created."""
    assert_user_error(run_cli(*_with_out(args, tmp_path)), needle)
    assert not (tmp_path / "out").exists() and not (tmp_path / "met").exists()


@pytest.mark.parametrize("args, needle", [
    (["ultramnist", "--seed", "nan"], "--seed"),
    (["ultramnist", "--seed", str(2**64)], "--seed"),
    (["ultramnist", "--n", str(10**12)], "1000000"),  # says the maximum
    (["ultramnist", "--workers", str(10**12)], "--workers"),
    (["build", "meth-medium", "--seed", "99999999999999999999"], "--seed"),
    (["build", "meth-medium", "--scale", "inf"], "--scale"),
    (["build", "meth-medium", "--scale", "-nan"], "--scale"),
    (["build", "meth-medium", "--scale", "1e300"], "--scale"),
    (["build", "meth-medium", "--api-rate", "-inf"], "--api-rate"),
    (["build", "meth-medium", "--api-rate", "Infinity"], "--api-rate"),
])
def test_bad_numbers_are_one_line(invoke, tmp_path: Path, args, needle):
    assert_user_error(invoke(*_with_out(args, tmp_path)), needle)
    assert not (tmp_path / "out").exists() and not (tmp_path / "met").exists()


@pytest.mark.parametrize("address", ["tcp://127.0.0.1", "tcp://127.0.0.1:99999", "tcp://127.0.0.1:0",
                                     "tcp://:8786", "tcp://127.0.0.1:8786/x", "local:0", "local:99999999",
                                     "udp://127.0.0.1:8786"])
def test_scheduler_address_is_checked(invoke, tmp_path: Path, address: str):
    proc = invoke("ultramnist", "--n", 1, "--size", 512, "--out", tmp_path / "o", "--scheduler", address)
    assert_user_error(proc, "--scheduler")
    assert not (tmp_path / "o").exists()


# ----------------------------------------------------------------------------- ultramnist inputs and outputs


def _idx_bytes(images: np.ndarray, labels: np.ndarray) -> tuple[bytes, bytes]:
    img = struct.pack(">BBBBIII", 0, 0, 8, 3, len(images), 28, 28) + images.astype(np.uint8).tobytes()
    lab = struct.pack(">BBBBI", 0, 0, 8, 1, len(labels)) + labels.astype(np.uint8).tobytes()
    return img, lab


def _mnist_folder(tmp_path: Path, spoil) -> Path:
    """A valid gzip IDX folder (both splits), then ``spoil(folder)`` damages it."""
    src = load_pool(None, "train")
    folder = tmp_path / "mnist"
    folder.mkdir()
    img, lab = _idx_bytes(src.images[:200], src.labels[:200])
    for prefix in ("train", "t10k"):
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(img))
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(lab))
    spoil(folder)
    return folder


def _cut_gz(folder: Path) -> None:  # a download that stopped half way
    p = folder / "train-images-idx3-ubyte.gz"
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def _flip_gz(folder: Path) -> None:  # bit rot in the compressed stream
    p = folder / "train-images-idx3-ubyte.gz"
    data = bytearray(p.read_bytes())
    for i in range(40, len(data) - 20, 97):
        data[i] ^= 0x5A
    p.write_bytes(bytes(data))


def _not_gzip(folder: Path) -> None:
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(b"this is not gzip at all" * 10)


def _truncated_plain(folder: Path) -> None:  # an uncompressed IDX file cut short (odd length too)
    p = folder / "train-images-idx3-ubyte.gz"
    raw = gzip.decompress(p.read_bytes())
    p.unlink()
    (folder / "train-images-idx3-ubyte").write_bytes(raw[: len(raw) // 3 + 1])


def _short_header(folder: Path) -> None:
    p = folder / "train-labels-idx1-ubyte.gz"
    p.unlink()
    (folder / "train-labels-idx1-ubyte").write_bytes(bytes([0, 0, 8, 1, 0, 0]))


def _huge_header(folder: Path) -> None:  # claims 4 billion digits: refused before reading
    p = folder / "train-images-idx3-ubyte.gz"
    p.write_bytes(gzip.compress(struct.pack(">BBBBIII", 0, 0, 8, 3, 2**32 - 1, 28, 28) + b"\0" * 1000))


@pytest.mark.parametrize("spoil, needle", [
    (_cut_gz, "gzip"), (_flip_gz, "train-images"), (_not_gzip, "gzip"), (_truncated_plain, "truncated"),
    (_short_header, "truncated"), (_huge_header, "not an MNIST file"),
])
def test_corrupt_mnist_files_are_one_line(invoke, tmp_path: Path, spoil, needle):
    folder = _mnist_folder(tmp_path, spoil)
    proc = invoke("ultramnist", "--n", 2, "--size", 512, "--out", tmp_path / "o", "--mnist", folder)
    assert_user_error(proc, needle, "MNIST file")  # exit 2, not a fake "interrupted" 130
    assert "interrupted" not in proc.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("taken, kind", [("train", "file"), ("summary.json", "folder"), ("train.csv", "folder"),
                                         ("test_digits.csv", "folder")])
def test_ultramnist_output_names_taken_before_any_work(invoke, tmp_path: Path, taken: str, kind: str):
    out = tmp_path / "D"
    out.mkdir()
    (out / taken).mkdir() if kind == "folder" else (out / taken).write_text("mine")
    proc = invoke("ultramnist", "--n", 2, "--size", 512, "--out", out)
    assert_user_error(proc, taken, "not a " + ("folder" if kind == "file" else "file"))
    assert sorted(p.name for p in out.iterdir()) == [taken]  # nothing rendered, nothing written


def test_ultramnist_second_run_on_a_folder_is_refused(tmp_path: Path):
    out = tmp_path / "D"
    with folder_lock(out, "methbuild ultramnist --out D (the first run)"):
        proc = run_cli("ultramnist", "--n", 2, "--size", 512, "--out", out)
    assert_user_error(proc, "in use", f"pid {os.getpid()}", "the first run")
    assert not (out / "train").exists()


# ----------------------------------------------------------------------------- build --manifest inputs

MANIFEST_HEAD = "ID,Label,Split\n"


@pytest.mark.parametrize("body, needles", [
    ("", ["no rows"]),
    ("1,Oil,train\n2,Oil,test\n1,Oil,test\n3,Ink,train\n3,Ink,validation\n", ["more than once", "1, 3"]),
    ("99999999999999999999,Oil,train\n", ["ID", "99999999999999999999"]),
    ("9223372036854775808,Oil,train\n", ["out of range"]),
    ("0,Oil,train\n", ["out of range"]),
    ("-5,Oil,train\n", ["'-5'", "not an object ID"]),
    ("1e20,Oil,train\n", ["'1e20'"]),
    ("\u00b2,Oil,train\n", ["not an object ID"]),
    ("\u0663,Oil,train\n", ["not an object ID"]),
])
def test_bad_manifests_are_refused_before_any_crawl(invoke, tmp_path: Path, body: str, needles):
    manifest = tmp_path / "M.csv"
    manifest.write_text(MANIFEST_HEAD + body, encoding="utf-8")
    proc = invoke("build", "--manifest", manifest, "--out", tmp_path / "out", "--met", tmp_path / "met",
                   "--api-url", "http://127.0.0.1:9/public/collection/v1", "--quiet")
    assert_user_error(proc, *needles)
    assert not (tmp_path / "met").exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize("width, height", [("1e12", "1e12"), ("1000000000000", "1000000000000"), ("0", "10")])
def test_absurd_manifest_sizes_are_refused(invoke, tmp_path: Path, width: str, height: str):
    manifest = tmp_path / "M.csv"
    manifest.write_text(f"ID,Label,Width,Height,Split\n1,Oil,{width},{height},train\n")
    proc = invoke("build", "--manifest", manifest, "--out", tmp_path / "out", "--met", tmp_path / "met",
                   "--api-url", "http://127.0.0.1:9/public/collection/v1", "--quiet")
    assert_user_error(proc, "Width")
    assert not (tmp_path / "met").exists()


@pytest.mark.parametrize("file_name, name", [("...csv", None), ("..csv", None), (".hidden.csv", None),
                                             ("M.csv", ".."), ("M.csv", "../x"), ("M.csv", "a/b"),
                                             ("M.csv", "/tmp/x"), ("M.csv", "")])
def test_manifest_dataset_names_stay_inside_out(invoke, tmp_path: Path, file_name: str, name):
    """The dataset folder is <out>/<name>: a name that is not one plain component is refused."""
    manifest = tmp_path / "in" / file_name
    manifest.parent.mkdir()
    manifest.write_text(MANIFEST_HEAD + "1,Oil,train\n")
    out = tmp_path / "deep" / "out"
    proc = invoke("build", "--manifest", manifest, "--out", out, "--met", tmp_path / "met",
                   *(["--name", name] if name is not None else []),
                   "--api-url", "http://127.0.0.1:9/public/collection/v1", "--quiet")
    assert_user_error(proc, "plain folder name")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]  # nothing written anywhere


def test_build_second_run_on_out_is_refused(tmp_path: Path):
    manifest = tmp_path / "M.csv"
    manifest.write_text(MANIFEST_HEAD + "1,Oil,train\n")
    out = tmp_path / "out"
    with folder_lock(out, "methbuild build (the first run)"):
        proc = run_cli("build", "--manifest", manifest, "--out", out, "--met", tmp_path / "met",
                       "--api-url", "http://127.0.0.1:9/public/collection/v1", "--quiet")
    assert_user_error(proc, "in use", f"pid {os.getpid()}", "the first run")
    assert not (tmp_path / "met").exists()  # no crawl started


# ----------------------------------------------------------------------------- Ctrl-C, SIGTERM


def _start_ultramnist(out: Path, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    # a session of its own: a Ctrl-C in a terminal reaches the whole process group, workers included
    # long enough (minutes) that it is surely still running when signalled; only seconds of it run
    return subprocess.Popen([sys.executable, "-m", "methbuild", "ultramnist", "--n", "2000", "--size", "4000",
                             "--split", "train", "--workers", "2", "--out", str(out), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)


def _wait_for_images(proc: subprocess.Popen, folder: Path, n: int = 1, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if folder.is_dir() and sum(1 for p in folder.iterdir() if p.suffix == ".jpeg") >= n:
            return
        time.sleep(0.05)
    raise AssertionError("no image appeared")


def _message_lines(stderr: str) -> list[str]:
    """stderr without the progress bar (tqdm redraws with carriage returns)."""
    lines = [seg.strip() for ln in stderr.splitlines() for seg in ln.split("\r")]
    return [ln for ln in lines if ln and not ln.startswith("ultramnist train")]


def _no_worker_left(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def _assert_only_whole_images(folder: Path) -> None:
    for p in folder.glob("*.jpeg"):
        with Image.open(p) as im:
            im.load()  # a truncated JPEG raises here


@pytest.mark.parametrize("how, status", [("SIGINT to the group", 130), ("SIGTERM to the command", 143)])
def test_interrupt_is_one_line_and_leaves_only_whole_files(tmp_path: Path, how: str, status: int):
    out = tmp_path / "D"
    proc = _start_ultramnist(out)
    try:
        _wait_for_images(proc, out / "train")
        if how.startswith("SIGINT"):
            os.killpg(proc.pid, signal.SIGINT)
        else:
            # and while it runs, a second run on the same folder is refused, naming the first
            second = run_cli("ultramnist", "--n", 2000, "--size", 4000, "--split", "train", "--out", out)
            assert_user_error(second, "in use", f"pid {proc.pid}")
            proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == status, stderr
    assert _message_lines(stderr) == [INTERRUPTED], stderr  # no traceback, no leaked-semaphore warning
    deadline = time.monotonic() + 10
    while not _no_worker_left(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _no_worker_left(proc.pid), "worker processes outlived the command"
    assert not (out / "train.csv").exists()
    _assert_only_whole_images(out / "train")


# ----------------------------------------------------------------------------- a full disk


def test_a_full_disk_is_one_line_and_a_rerun_after_freeing_space_completes(small_disk: Path):
    out = small_disk / "um"
    args = ("ultramnist", "--n", 60, "--size", 1024, "--format", "png", "--split", "train", "--workers", 2,
            "--out", out)
    proc = run_cli(*args)
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    lines = _message_lines(proc.stderr)
    assert len(lines) == 1 and "no space left on device" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    for p in (out / "train").glob("*.png"):  # whatever is under a final name is whole
        with Image.open(p) as im:
            im.load()
    assert not (out / "train.csv").exists() and not (out / "summary.json").exists()
    # more space (as if the user freed some): the same command resumes and completes
    resize_disk(small_disk, "64m")
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr
    assert "already complete" in proc.stdout
    assert len(list((out / "train").glob("*.png"))) == 60
    assert not list((out / "train").glob(".*tmp*"))
    assert (out / LOCK_NAME).exists()
