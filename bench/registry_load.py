#!/usr/bin/env python3
"""Load on `ferry serve` beside distribution (docker-registry 2.8): many clients at once.

What is measured, per server, in the same run and on the same machine:

* push: CLIENTS clients at once, each pushing its own BLOB_MIB MiB blob (POST, then one
  PUT ?digest= with the body streamed); wall time, and the throughput it gives;
* pull: the same CLIENTS clients at once, each GETting its blob to the end (the length
  is checked, and the sha256 of a sample of the blobs);
* the server process itself, sampled from /proc every 100 ms: peak RSS (VmHWM), the
  most threads it had, and its RSS after IDLE seconds with no requests (does memory go
  back when the load stops?).

The blobs differ (an 8-byte client prefix before a shared random body), so neither
server can deduplicate them. Both servers use their filesystem driver on a fresh
directory, no auth, no TLS, log level `error`/`warn` with no access log: the work is
the same HTTP and disk work. ferry runs with its default `http:` settings.

Targets are reported, never asserted: the script exits non-zero only when a request
fails, a server dies, or a pulled blob is wrong.

Usage: bench/registry_load.py [--clients 200] [--blob-mib 16] [--idle 10] [--ferry PATH] [--no-build]
"""

import argparse
import hashlib
import http.client
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from registry import BenchError, Distribution, Ferry, log  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024


class Sampler(threading.Thread):
    """Samples VmRSS and Threads of a process every 100 ms."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid = pid
        self.max_threads = 0
        self.rss_kib = 0
        self.stop_flag = threading.Event()

    def read(self):
        fields = {}
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields[key] = value.split()
        return fields

    def run(self):
        while not self.stop_flag.is_set():
            try:
                fields = self.read()
            except OSError:
                return
            self.max_threads = max(self.max_threads, int(fields["Threads"][0]))
            self.rss_kib = int(fields["VmRSS"][0])
            time.sleep(0.1)

    def peak_kib(self) -> int:
        return int(self.read()["VmHWM"][0])


def blob_digest(prefix: bytes, body: bytes) -> str:
    h = hashlib.sha256(prefix)
    h.update(body)
    return "sha256:" + h.hexdigest()


def push(host: str, port: int, i: int, body: bytes) -> None:
    prefix = i.to_bytes(8, "big")
    digest = blob_digest(prefix, body)
    conn = http.client.HTTPConnection(host, port, timeout=600)
    conn.request("POST", f"/v2/load/c{i}/blobs/uploads/", body=b"", headers={"Content-Length": "0"})
    r = conn.getresponse()
    r.read()
    if r.status != 202:
        raise BenchError(f"client {i}: POST answered {r.status}")
    location = r.getheader("Location")
    if location.startswith("http"):
        location = "/" + location.split("/", 3)[3]
    sep = "&" if "?" in location else "?"
    conn.putrequest("PUT", f"{location}{sep}digest={digest}")
    conn.putheader("Content-Type", "application/octet-stream")
    conn.putheader("Content-Length", str(len(prefix) + len(body)))
    conn.endheaders()
    conn.send(prefix)
    view = memoryview(body)
    for start in range(0, len(body), MIB):
        conn.send(view[start:start + MIB])
    r = conn.getresponse()
    r.read()
    if r.status != 201:
        raise BenchError(f"client {i}: PUT answered {r.status}")
    conn.close()


def pull(host: str, port: int, i: int, body: bytes, check: bool) -> None:
    prefix = i.to_bytes(8, "big")
    digest = blob_digest(prefix, body)
    conn = http.client.HTTPConnection(host, port, timeout=600)
    conn.request("GET", f"/v2/load/c{i}/blobs/{digest}")
    r = conn.getresponse()
    if r.status != 200:
        raise BenchError(f"client {i}: GET answered {r.status}")
    h = hashlib.sha256() if check else None
    total = 0
    while True:
        chunk = r.read(MIB)
        if not chunk:
            break
        total += len(chunk)
        if h:
            h.update(chunk)
    if total != len(prefix) + len(body):
        raise BenchError(f"client {i}: pulled {total} bytes, expected {len(prefix) + len(body)}")
    if h and "sha256:" + h.hexdigest() != digest:
        raise BenchError(f"client {i}: pulled bytes do not match {digest}")
    conn.close()


def run_server(server, clients: int, body: bytes, idle: float) -> dict:
    server.start()
    try:
        sampler = Sampler(server.proc.pid)
        sampler.start()
        host, port = "127.0.0.1", server.port
        total = clients * (len(body) + 8)
        with ThreadPoolExecutor(max_workers=clients) as pool:
            started = time.monotonic()
            list(pool.map(lambda i: push(host, port, i, body), range(clients)))
            push_s = time.monotonic() - started
            server.alive()
            started = time.monotonic()
            list(pool.map(lambda i: pull(host, port, i, body, i % 25 == 0), range(clients)))
            pull_s = time.monotonic() - started
        server.alive()
        peak = sampler.peak_kib()
        time.sleep(idle)
        idle_rss = sampler.rss_kib
        sampler.stop_flag.set()
        return {
            "push_s": push_s,
            "push_mib_s": total / MIB / push_s,
            "pull_s": pull_s,
            "pull_mib_s": total / MIB / pull_s,
            "peak_mib": peak / 1024,
            "threads": sampler.max_threads,
            "idle_mib": idle_rss / 1024,
        }
    finally:
        server.stop()
        shutil.rmtree(server.dir, ignore_errors=True)


class QuietFerry(Ferry):
    def __init__(self, workdir: Path, binary: Path, config):
        self.config = config
        super().__init__(workdir, binary)

    def command(self) -> list:
        extra = ["--config", str(self.config)] if self.config else []
        return super().command() + ["--log-level", "warn"] + extra


class QuietDistribution(Distribution):
    def command(self) -> list:
        cmd = super().command()
        config = self.dir / "config.yml"
        config.write_text(config.read_text().replace("accesslog: {disabled: false}", "accesslog: {disabled: true}"))
        return cmd


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--blob-mib", type=int, default=16)
    ap.add_argument("--idle", type=float, default=10.0, help="seconds of no load before RSS is read again")
    ap.add_argument("--ferry", type=Path, default=ROOT / "target" / "release" / "ferry")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--ferry-only", action="store_true", help="skip distribution (for tuning ferry)")
    ap.add_argument("--ferry-config", type=Path, help="a config file for ferry serve")
    args = ap.parse_args()
    if not args.no_build:
        log("cargo build --release -p ferry-cli")
        subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "ferry-cli"], cwd=ROOT, check=True)
    if not shutil.which("docker-registry"):
        raise BenchError("docker-registry not found: apt-get install -y docker-registry")
    body = random.Random(7).randbytes(args.blob_mib * MIB)
    workdir = Path(tempfile.mkdtemp(prefix="ferry-load-"))
    results = {}
    try:
        servers = [QuietFerry(workdir, args.ferry, args.ferry_config)]
        if not args.ferry_only:
            servers.append(QuietDistribution(workdir))
        for server in servers:
            log(f"{server.name}: {args.clients} clients x {args.blob_mib} MiB, push then pull")
            results[server.name] = run_server(server, args.clients, body, args.idle)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    f = results["ferry"]
    if args.ferry_only:
        for key, value in f.items():
            print(f"{key:12} {value:10.1f}")
        return 0
    d = results["distribution"]
    print(f"\n{args.clients} concurrent clients, {args.blob_mib} MiB blob each "
          f"({args.clients * args.blob_mib / 1024:.1f} GiB pushed, then pulled)\n")
    print(f"{'':28}{'ferry':>12}{'distribution':>14}{'ferry/dist':>12}")
    rows = [
        ("push throughput (MiB/s)", "push_mib_s", "{:.0f}"),
        ("pull throughput (MiB/s)", "pull_mib_s", "{:.0f}"),
        ("peak RSS (MiB)", "peak_mib", "{:.1f}"),
        ("most threads", "threads", "{}"),
        (f"RSS after {args.idle:.0f} s idle (MiB)", "idle_mib", "{:.1f}"),
    ]
    for label, key, fmt in rows:
        ratio = f[key] / d[key] if d[key] else float("nan")
        print(f"{label:28}{fmt.format(f[key]):>12}{fmt.format(d[key]):>14}{ratio:>12.2f}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        log(f"FAILED: {e}")
        sys.exit(1)
