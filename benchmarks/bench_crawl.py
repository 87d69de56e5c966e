"""Crawler throughput, CPU and memory against img2dataset, and the rate limiter's accuracy.

    .venv/bin/python benchmarks/bench_crawl.py            # 1,000 images of 5–30 MB, 3 rounds
    .venv/bin/python benchmarks/bench_crawl.py --quick    # 120 images, 3 rounds, shorter rate check

Both tools fetch the same image URLs from the local mirror over loopback, with the same
concurrency; the mirror runs in its own process (its images rendered and cached before the
clock starts) so neither tool pays for it. Our crawler also fetches every object's API record
first (img2dataset only downloads URLs), with its rate limits raised out of the way: this
measures the machinery, the politeness is checked separately. img2dataset runs with no
resizing, `files` output, no re-encoding, one process with C threads; it is installed into
benchmarks/.venv-img2dataset on first use (if that fails, the baseline is a plain sequential
`requests` loop, and the output says so).

Printed: images/s, CPU seconds per image and peak RSS of each tool (medians over rounds), the
ratios against the targets (≥ 3× img2dataset's throughput, ≤ 150 MB peak RSS), and the largest
deviation of the API request rate from the configured rate over any 10 s window (target ≤ 5%).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
I2D_VENV = HERE / ".venv-img2dataset"
I2D = I2D_VENV / "bin" / "img2dataset"


# ---------------------------------------------------------------- child modes

def serve(args) -> None:
    """Run the mirror (big images from a pool) until killed; write its root URL to a file."""
    from methbuild.met.mirror import API_PREFIX, Mirror, serve_forever

    mirror = Mirror(synthetic=args.objects, seed=1, image_pool=args.pool, mp_range=(5.0, 28.0), noise=120,
                    quality=92, cache_bytes=4 << 30)

    def ready(root: str) -> None:
        Path(args.port_file).write_text(root + API_PREFIX)

    serve_forever(mirror, 0, on_ready=ready)


def _vm_hwm_mb() -> float:
    """This process's peak RSS (VmHWM: per address space, so not inherited from the parent)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_ours(args) -> None:
    from methbuild.met import crawl as crawl_module
    from methbuild.met.crawl import crawl, read_ids

    fetch_peak = {}
    export = crawl_module._export
    t0 = time.perf_counter()

    def export_after_noting_peak(state, out):  # the peak while fetching = the peak before the export
        fetch_peak["mb"] = _vm_hwm_mb()
        fetch_peak["s"] = time.perf_counter() - t0
        export(state, out)

    crawl_module._export = export_after_noting_peak
    ids = read_ids(args.ids)
    r = crawl(ids, args.out, api_url=args.api, concurrency=args.concurrency, api_rate=5000, image_rate=5000,
              progress=False, retries=2, retry_base=0.1)
    print(json.dumps({"downloaded": r.counts["downloaded"], "bytes": r.bytes_now, "exit": r.exit_code,
                      "fetch_rss_mb": fetch_peak["mb"], "rss_mb": _vm_hwm_mb(), "fetch_s": fetch_peak["s"]}))


def run_requests(args) -> None:
    """The fallback baseline: a sequential requests loop writing each body to a file."""
    import requests

    urls = Path(args.urls).read_text().split()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with requests.Session() as s:
        for i, u in enumerate(urls):
            (out / f"{i}.jpg").write_bytes(s.get(u, timeout=60).content)


# ---------------------------------------------------------------- measuring

def measure(cmd: list[str], env: dict | None = None) -> dict:
    """Run ``cmd``; wall seconds, CPU seconds (user+sys) and peak RSS (MB) of it and its children.

    Peak RSS is the largest sum of the resident sets of the process tree, sampled every 20 ms
    (``ru_maxrss`` is useless here: a spawned child inherits the parent's high-water mark).
    The page cache is flushed before (no run pays for the previous one's dirty pages) and
    after: ``durable`` is the wall time until the files are on disk, not only written to RAM.
    """
    import psutil

    os.sync()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    root = psutil.Process(proc.pid)
    peak = 0
    chunks: dict[str, list[bytes]] = {"out": [], "err": []}

    def drain(stream, key):
        for block in iter(lambda: stream.read(65536), b""):
            chunks[key].append(block)

    readers = [threading.Thread(target=drain, args=(proc.stdout, "out")),
               threading.Thread(target=drain, args=(proc.stderr, "err"))]
    for t in readers:
        t.start()
    while True:
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        try:
            rss = sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
            peak = max(peak, rss)
        except psutil.Error:
            pass
        time.sleep(0.02)
    wall = time.perf_counter() - t0
    os.sync()
    durable = time.perf_counter() - t0
    for t in readers:
        t.join()
    out = b"".join(chunks["out"]).decode()
    err = b"".join(chunks["err"]).decode()
    code = os.waitstatus_to_exitcode(status)
    proc.returncode = code
    if code != 0:
        raise SystemExit(f"{cmd[:3]} failed ({code}):\n{err[-3000:]}")
    return {"wall": wall, "durable": durable, "cpu": ru.ru_utime + ru.ru_stime, "user": ru.ru_utime,
            "sys": ru.ru_stime, "rss_mb": peak / 2**20, "stdout": out}


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + sys) a running process has used so far (the mirror's share of a run)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sha256_ms(nbytes: float) -> float:
    """Milliseconds sha256 takes over ``nbytes`` here (1 MiB updates, warm cache): the floor's core."""
    import hashlib

    block = os.urandom(1 << 20)
    h = hashlib.sha256()
    t = time.perf_counter()
    for _ in range(256):
        h.update(block)
    return (time.perf_counter() - t) / (256 << 20) * nbytes * 1000


def _minimal_get(url: str, folder: Path, buf: bytearray) -> int:
    """One image the cheapest way Python can: recv_into one buffer, sha256, an O_DIRECT write."""
    import hashlib
    import http.client
    from urllib.parse import urlsplit

    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    conn.request("GET", u.path)
    resp = conn.getresponse()
    h = hashlib.sha256()
    view = memoryview(buf)
    n = 0
    fd = os.open(folder / f"{threading.get_ident()}.bin", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_DIRECT, 0o644)
    try:
        while True:
            got = 0
            while got < len(buf) and (k := resp.readinto(view[got:])):
                got += k
            if not got:
                break
            h.update(view[:got])
            os.write(fd, view[:got + (-got) % 4096])  # whole blocks (the tail padded: a floor, not a file)
            n += got
            if got < len(buf):
                break
    finally:
        os.close(fd)
        conn.close()
    return n


def floor_probe(urls: list[str], folder: Path, mirror_pid: int, threads: int = 2) -> dict:
    """CPU per image of the minimal client (:func:`_minimal_get` on ``threads`` threads) and the
    mirror's: what any crawler here pays at least for the socket copy, the hash and the write."""
    import mmap
    import resource

    folder.mkdir(parents=True, exist_ok=True)
    local = threading.local()

    def get(u):
        if not hasattr(local, "buf"):
            local.buf = mmap.mmap(-1, 1 << 20)  # page-aligned, as O_DIRECT needs
        return _minimal_get(u, folder, local.buf)

    r0, m0, t0 = resource.getrusage(resource.RUSAGE_SELF), proc_cpu(mirror_pid), time.perf_counter()
    with ThreadPoolExecutor(threads) as ex:
        total = sum(ex.map(get, urls))
    wall = time.perf_counter() - t0
    r1, m1 = resource.getrusage(resource.RUSAGE_SELF), proc_cpu(mirror_pid)
    shutil.rmtree(folder, ignore_errors=True)
    n = len(urls)
    return {"images": n, "bytes": total, "ips": n / wall, "user_ms": (r1.ru_utime - r0.ru_utime) / n * 1000,
            "sys_ms": (r1.ru_stime - r0.ru_stime) / n * 1000, "mirror_ms": (m1 - m0) / n * 1000}


def ensure_img2dataset() -> bool:
    if I2D.exists():
        return True
    print("installing img2dataset into benchmarks/.venv-img2dataset ...", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(I2D_VENV)], check=True)
        subprocess.run([str(I2D_VENV / "bin" / "python"), "-m", "pip", "install", "-q", "img2dataset"], check=True)
    except (subprocess.CalledProcessError, OSError) as exc:
        print(f"img2dataset could not be installed ({exc}); falling back to a sequential requests loop")
        return False
    return I2D.exists()


def count_files(folder: Path, suffix: str) -> tuple[int, int]:
    n = size = 0
    for p in folder.rglob(f"*{suffix}"):
        n += 1
        size += p.stat().st_size
    return n, size


def rate_check(rate: float, seconds: float) -> dict:
    """Crawl tiny records at ``rate``/s; the worst deviation over every 10 s window of arrivals."""
    import numpy as np

    from methbuild.met.crawl import crawl
    from methbuild.met.mirror import serve_in_thread

    n = int(rate * seconds)
    out = HERE / "out" / "rate"
    shutil.rmtree(out, ignore_errors=True)
    with serve_in_thread(synthetic=n, seed=3, image_scale=0.005) as url:
        crawl(sorted(url.mirror.records), out, api_url=url, concurrency=32, api_rate=rate, image_rate=10_000,
              progress=False)
        t = np.array(sorted(url.mirror.record_times))
    shutil.rmtree(out, ignore_errors=True)
    window = 10.0
    starts = np.arange(t[0], t[-1] - window, 0.05)
    counts = np.searchsorted(t, starts + window) - np.searchsorted(t, starts)
    ratios = counts / (rate * window)
    return {"requests": len(t), "seconds": float(t[-1] - t[0]), "windows": len(starts),
            "min_ratio": float(ratios.min()), "max_ratio": float(ratios.max())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="120 images and a 15 s rate check (about 2 minutes).")
    ap.add_argument("--n", type=int, default=None, help="Images per round [1000; --quick: 120].")
    ap.add_argument("--rounds", type=int, default=3, help="Rounds per tool; medians are printed.")
    ap.add_argument("--concurrency", type=int, default=16, help="Concurrency of both tools.")
    ap.add_argument("--pool", type=int, default=24, help="Distinct images the mirror renders (objects share them).")
    ap.add_argument("--rate", type=float, default=40.0, help="API rate for the rate-limiter check (req/s).")
    ap.add_argument("--workdir", type=Path, default=HERE / "out" / "crawl",
                    help="Where both tools write (a tmpfs such as /dev/shm/x takes the disk out of the comparison).")
    ap.add_argument("--skip-baseline", action="store_true", help="Only measure our crawler.")
    # internal child modes
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--run-ours", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--run-requests", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--objects", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--port-file", help=argparse.SUPPRESS)
    ap.add_argument("--ids", help=argparse.SUPPRESS)
    ap.add_argument("--urls", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--api", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        return serve(args)
    if args.run_ours:
        return run_ours(args)
    if args.run_requests:
        return run_requests(args)

    import requests

    n = args.n or (120 if args.quick else 1000)
    work = args.workdir
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    port_file = work / "mirror.url"
    objects = int(n / 0.8) + 50
    mirror = subprocess.Popen([sys.executable, __file__, "--serve", "--objects", str(objects), "--pool",
                               str(args.pool), "--port-file", str(port_file)], stdout=subprocess.DEVNULL)
    try:
        for _ in range(300):
            if port_file.exists() and port_file.read_text():
                break
            time.sleep(0.1)
        api = port_file.read_text()
        ids = [i for i in requests.get(api + "/objects", timeout=30).json()["objectIDs"]]
        recs = {}

        def rec(i):
            return requests.get(f"{api}/objects/{i}", timeout=30).json()

        with ThreadPoolExecutor(8) as ex:
            for r in ex.map(rec, ids):
                recs[r["objectID"]] = r
        public = [i for i in ids if recs[i]["isPublicDomain"]][:n]
        urls = [recs[i]["primaryImage"] for i in public]
        (work / "ids.txt").write_text("\n".join(map(str, public)) + "\n")
        (work / "urls.txt").write_text("\n".join(urls) + "\n")
        print(f"mirror: {api}; warming its cache ({args.pool} distinct images of 5–28 MP) ...", flush=True)
        t0 = time.perf_counter()
        seen = {}
        for i, u in zip(public, urls):
            seen.setdefault(i % args.pool, u)
        with ThreadPoolExecutor(2) as ex:
            sizes = list(ex.map(lambda u: len(requests.get(u, timeout=600).content), seen.values()))
        print(f"  {len(sizes)} images, {min(sizes) / 1e6:.1f}–{max(sizes) / 1e6:.1f} MB each, "
              f"warm-up {time.perf_counter() - t0:.0f} s", flush=True)

        use_i2d = not args.skip_baseline and ensure_img2dataset()
        baseline = "img2dataset" if use_i2d else "sequential requests loop"
        results: dict[str, list[dict]] = {"methbuild crawl": [], baseline: []}
        env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", PYTHONWARNINGS="ignore")
        for rnd in range(args.rounds):
            out = work / "ours"
            shutil.rmtree(out, ignore_errors=True)
            c0 = proc_cpu(mirror.pid)
            m = measure([sys.executable, __file__, "--run-ours", "--ids", str(work / "ids.txt"), "--out", str(out),
                         "--api", api, "--concurrency", str(args.concurrency)])
            m["mirror_cpu"] = proc_cpu(mirror.pid) - c0
            got = json.loads(m["stdout"].strip().splitlines()[-1])
            m["fetch_s"] = got["fetch_s"]
            assert got["downloaded"] == len(public) and got["exit"] == 0, got
            m["images"], m["bytes"] = count_files(out / "images", ".jpg")
            m["fetch_rss_mb"] = got["fetch_rss_mb"]
            m["rss_mb"] = max(m["rss_mb"], got["rss_mb"])  # sampled peak, or the exact VmHWM if higher
            results["methbuild crawl"].append(m)
            shutil.rmtree(out, ignore_errors=True)
            print(f"round {rnd + 1}: methbuild crawl {m['images'] / m['wall']:.1f} img/s "
                  f"({m['images'] / m['fetch_s']:.1f} while fetching, after start-up and before the export), "
                  f"{m['cpu'] / m['images'] * 1000:.1f} ms CPU/img, peak RSS {m['rss_mb']:.0f} MB "
                  f"({m['fetch_rss_mb']:.0f} MB while fetching)", flush=True)
            if args.skip_baseline:
                continue
            out = work / "base"
            shutil.rmtree(out, ignore_errors=True)
            if use_i2d:
                cmd = [str(I2D), "--url_list", str(work / "urls.txt"), "--input_format", "txt", "--output_folder",
                       str(out), "--output_format", "files", "--resize_mode", "no", "--processes_count", "1",
                       "--thread_count", str(args.concurrency), "--disable_all_reencoding", "True",
                       "--number_sample_per_shard", "100000", "--timeout", "60", "--retries", "0",
                       "--compute_hash", "sha256", "--enable_wandb", "False", "--distributor", "multiprocessing"]
            else:
                cmd = [sys.executable, __file__, "--run-requests", "--urls", str(work / "urls.txt"), "--out", str(out)]
            c0 = proc_cpu(mirror.pid)
            m = measure(cmd, env)
            m["mirror_cpu"] = proc_cpu(mirror.pid) - c0
            m["images"], m["bytes"] = count_files(out, ".jpg")
            results[baseline].append(m)
            shutil.rmtree(out, ignore_errors=True)
            print(f"round {rnd + 1}: {baseline} {m['images'] / m['wall']:.1f} img/s, "
                  f"{m['cpu'] / max(1, m['images']) * 1000:.1f} ms CPU/img, peak RSS {m['rss_mb']:.0f} MB "
                  f"({m['images']} of {len(urls)} images)", flush=True)
        floor = floor_probe(urls[: min(len(urls), 60)], work / "floor", mirror.pid)
    finally:
        mirror.terminate()
        mirror.wait()
        shutil.rmtree(work, ignore_errors=True)

    def med(rs, f):
        return statistics.median(f(r) for r in rs)

    print()
    print(f"== {n} images, {sum(sizes) / len(sizes) / 1e6:.1f} MB mean, concurrency {args.concurrency}, "
          f"{args.rounds} rounds (medians)")
    rows = {}
    for name, rs in results.items():
        if not rs:
            continue
        rows[name] = (med(rs, lambda r: r["images"] / r["wall"]), med(rs, lambda r: r["cpu"] / max(1, r["images"])),
                      med(rs, lambda r: r["rss_mb"]), med(rs, lambda r: r["bytes"] / r["wall"] / 1e6),
                      med(rs, lambda r: r["images"] / r["durable"]))
        ips, cpu, rss, mbs, dur = rows[name]
        user, sys_ = (med(rs, lambda r, k=k: r[k] / max(1, r["images"])) * 1000 for k in ("user", "sys"))
        mirror_ms = med(rs, lambda r: r["mirror_cpu"] / max(1, r["images"])) * 1000
        print(f"{name:26s} {ips:7.1f} img/s {mbs:7.0f} MB/s  ({dur:5.1f} img/s until on disk)  "
              f"{cpu * 1000:7.1f} ms CPU/img ({user:.1f} user + {sys_:.1f} sys; the mirror {mirror_ms:.1f})  "
              f"peak RSS {rss:6.0f} MB")
    ours = rows["methbuild crawl"]
    if len(rows) == 2:
        base = rows[baseline]
        print(f"throughput ratio vs {baseline}: {ours[0] / base[0]:.2f}x until exit, {ours[4] / base[4]:.2f}x until "
              f"the files are on disk (target >= 3x); CPU per image: {base[1] / ours[1]:.2f}x less")
    fetch_ips = med(results["methbuild crawl"], lambda r: r["images"] / r["fetch_s"])
    print(f"methbuild crawl while fetching (without its ~0.5 s start-up and export): {fetch_ips:.1f} img/s")
    sha = sha256_ms(sum(sizes) / len(sizes))
    fl = floor
    floor_ms = fl["user_ms"] + fl["sys_ms"] + fl["mirror_ms"]
    ours_ms = ours[1] * 1000 + med(results["methbuild crawl"], lambda r: r["mirror_cpu"] / r["images"]) * 1000
    cores = os.cpu_count() or 1
    print(f"floor (a minimal blocking client on {fl['images']} of the URLs: recv_into, sha256, O_DIRECT write; "
          f"no API record, no state, no header check): {fl['user_ms']:.1f} user + {fl['sys_ms']:.1f} sys ms/img "
          f"(sha256 alone {sha:.1f}) + the mirror {fl['mirror_ms']:.1f} = {floor_ms:.1f} ms/img -> at most "
          f"{cores * 1000 / floor_ms:.0f} img/s on {cores} cores; ours {ours_ms:.1f} ms/img with the mirror -> at most "
          f"{cores * 1000 / ours_ms:.0f} img/s; 3x {baseline if len(rows) == 2 else 'the baseline'} needs "
          f"{3 * rows[baseline][0] if len(rows) == 2 else float('nan'):.0f} img/s")
    fetch_rss = med(results["methbuild crawl"], lambda r: r["fetch_rss_mb"])
    print(f"peak RSS while fetching: {fetch_rss:.0f} MB (target <= 150 MB); whole run incl. the Parquet "
          f"export: {ours[2]:.0f} MB")

    rc = rate_check(args.rate, 15 if args.quick else 40)
    dev = max(1 - rc["min_ratio"], rc["max_ratio"] - 1)
    print(f"rate limiter at {args.rate:g} req/s: {rc['requests']} API requests in {rc['seconds']:.1f} s; over "
          f"{rc['windows']} sliding 10 s windows the rate was {rc['min_ratio'] * 100:.1f}–{rc['max_ratio'] * 100:.1f}% "
          f"of the configured rate (worst deviation {dev * 100:.1f}%, target <= 5%)")


if __name__ == "__main__":
    main()
