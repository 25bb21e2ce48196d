#!/usr/bin/env python3
"""Benchmark `ferry serve` on the s3 storage driver against the filesystem driver.

The S3 server is Garage (crates.io; scripts/test-all.sh installs it), a single node on
127.0.0.1 over a temporary directory, with Signature V4 credentials, so both drivers end on
the same disk.

What is measured, in the same run:

* corpus: wall time of skopeo pushing and then pulling every image of the synthetic corpus
  (bench/corpus.py, exactly as bench/registry.py does) through `ferry serve` on the
  filesystem driver and on the s3 driver; each run starts both fresh, the order flips
  every run, times are the median over runs. The ratio is s3/filesystem: above 1.00 means
  the s3 driver was slower. Every pulled image's digest is checked against the corpus.
* big blob: one blob of `--blob-mib` MiB (default 1024) pushed to ferry on s3 in
  `--chunks` PATCH requests (each becomes one segment object, uploaded as a multipart
  upload; completing the upload streams the segments into one multipart object) and
  pulled back with one GET, hashed on the fly and compared. Reported: the wall times and
  ferry's peak RSS (`VmHWM` from /proc/PID/status, read before it stops). Memory stays
  flat if the peak does not follow the blob size: compare `--blob-mib 1024` with a
  smaller run.

The script exits non-zero if a copy or a request fails, a server dies, or a digest
differs; never because of a ratio.

Usage: bench/s3.py [--scale full|small] [--runs N] [--blob-mib N] [--chunks N] [--ferry PATH] [--no-build]
"""

import argparse
import hashlib
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
import registry  # noqa: E402  (bench/registry.py: servers, skopeo phases, corpus)
from registry import MIB, BenchError, log  # noqa: E402

# Garage's key ids are `GK` and 24 hex digits; its secrets 64 hex digits.
ACCESS_KEY = "GK" + "be" * 12
SECRET_KEY = "5ec7" * 16


class Garage:
    """A single-node Garage over a temporary directory; buckets made with its command line."""

    def __init__(self, workdir: Path):
        self.dir = Path(tempfile.mkdtemp(prefix="garage-", dir=workdir))
        self.port, rpc = registry.free_port(), registry.free_port()
        self.config = self.dir / "garage.toml"
        self.config.write_text(
            f"metadata_dir = '{self.dir}/meta'\ndata_dir = '{self.dir}/data'\ndb_engine = 'sqlite'\n"
            f"replication_factor = 1\nrpc_bind_addr = '127.0.0.1:{rpc}'\nrpc_secret = '{'b3' * 32}'\n"
            f"[s3_api]\ns3_region = 'us-east-1'\napi_bind_addr = '127.0.0.1:{self.port}'\n")
        self.binary = shutil.which("garage") or str(Path.home() / ".cargo" / "bin" / "garage")
        env = dict(os.environ, GARAGE_DEFAULT_ACCESS_KEY=ACCESS_KEY, GARAGE_DEFAULT_SECRET_KEY=SECRET_KEY,
                   GARAGE_DEFAULT_BUCKET="default", RUST_LOG="error")
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.config), "server", "--single-node", "--default-bucket"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if self.garage("bucket", "info", "default", check=False).returncode == 0:
                return
            time.sleep(0.1)
        self.stop()
        raise BenchError("garage did not start")

    def garage(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([self.binary, "-c", str(self.config), *args], check=check,
                              env=dict(os.environ, RUST_LOG="error"), capture_output=True)

    def make_bucket(self, name: str) -> None:
        self.garage("bucket", "create", name)
        self.garage("bucket", "allow", "--read", "--write", "--owner", name, "--key", ACCESS_KEY)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


class FerryS3(registry.Ferry):
    """`ferry serve` on the s3 driver, in a bucket of its own, so every run starts empty."""

    name = "ferry-s3"
    buckets = 0

    def __init__(self, workdir: Path, binary: Path, s3: Garage):
        self.s3 = s3
        FerryS3.buckets += 1
        self.bucket = f"run-{FerryS3.buckets}"
        s3.make_bucket(self.bucket)
        super().__init__(workdir, binary)

    def command(self) -> list:
        config = self.dir / "ferry.yaml"
        config.write_text(
            f"storage: {{driver: s3, s3: {{bucket: {self.bucket}, region: us-east-1, "
            f"endpoint: '{self.s3.endpoint}', allow_http: true, access_key_id: {ACCESS_KEY}, "
            f"secret_access_key: {SECRET_KEY}}}}}\n")
        return [str(self.binary), "serve", "--config", str(config), "--addr", self.host]



class FerryFs(registry.Ferry):
    name = "ferry-fs"


def corpus_runs(args, ferry_bin: Path, workdir: Path, s3: Garage):
    corpus = registry.make_corpus(args.scale)
    meta = json.loads((corpus / "corpus.json").read_text())
    images = meta["images"]
    log(f"corpus {corpus}: {len(images)} images, {meta['unique_blob_bytes'] / MIB:.1f} MiB of unique blobs; "
        f"{args.runs} runs")
    times = {n: {"push": [], "pull": []} for n in ("ferry-fs", "ferry-s3")}
    rss = {n: [] for n in times}
    failures = 0
    for run in range(args.runs):
        servers = [FerryFs(workdir, ferry_bin), FerryS3(workdir, ferry_bin, s3)]
        try:
            for s in servers:
                s.start()
            order = servers if run % 2 == 0 else servers[::-1]
            log(f"run {run + 1}/{args.runs}: order {' then '.join(s.name for s in order)}")
            for s in order:
                t = registry.run_phase(1, registry.push_copies(corpus, images, s))
                s.alive()
                times[s.name]["push"].append(t)
                log(f"  push {s.name:<9} {t:7.2f} s")
            pulled = {}
            for s in order:
                pulled[s.name] = Path(tempfile.mkdtemp(prefix=f"pull-{s.name}-", dir=workdir))
                t = registry.run_phase(1, registry.pull_copies(pulled[s.name], images, s))
                s.alive()
                times[s.name]["pull"].append(t)
                log(f"  pull {s.name:<9} {t:7.2f} s")
            for s in servers:
                rss[s.name].append(s.peak_rss_kib())
                failures += registry.verify(pulled[s.name], images, s.name)
                shutil.rmtree(pulled[s.name])
        finally:
            for s in servers:
                s.stop()
                shutil.rmtree(s.dir, ignore_errors=True)
    return meta, times, rss, failures


def request(conn, method: str, path: str, body=None, headers=None):
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    return r


def big_blob(args, ferry_bin: Path, workdir: Path, s3: Garage) -> dict:
    size = args.blob_mib * MIB
    chunk = -(-size // args.chunks)
    ferry = FerryS3(workdir, ferry_bin, s3)
    ferry.start()
    try:
        host = urlsplit(ferry.url).netloc
        conn = http.client.HTTPConnection(host, timeout=600)
        # The blob: pseudo-random bytes made chunk by chunk, never held whole.
        digest = hashlib.sha256()
        seed = hashlib.sha256(b"ferry-big-blob").digest()

        def piece(i: int, n: int) -> bytes:
            block = hashlib.sha256(seed + i.to_bytes(8, "big")).digest() * 32768  # 1 MiB
            return block[:n]

        start = time.monotonic()
        r = request(conn, "POST", "/v2/big/blob/blobs/uploads/")
        r.read()
        if r.status != 202:
            raise BenchError(f"POST upload: {r.status}")
        location = r.getheader("Location")
        sent = 0
        mib = 0
        while sent < size:
            n = min(chunk, size - sent)

            def body(n=n):
                nonlocal mib
                left = n
                while left:
                    block = piece(mib, min(MIB, left))
                    digest.update(block)
                    mib += 1
                    left -= len(block)
                    yield block

            r = request(conn, "PATCH", location, body=body(), headers={
                "Content-Type": "application/octet-stream", "Content-Length": str(n),
                "Content-Range": f"{sent}-{sent + n - 1}"})
            r.read()
            if r.status != 202:
                raise BenchError(f"PATCH {sent}-{sent + n - 1}: {r.status}")
            location = r.getheader("Location")
            sent += n
        blob_digest = "sha256:" + digest.hexdigest()
        sep = "&" if "?" in location else "?"
        r = request(conn, "PUT", f"{location}{sep}digest={blob_digest}", body=b"",
                    headers={"Content-Length": "0"})
        text = r.read()
        if r.status != 201:
            raise BenchError(f"PUT upload: {r.status} {text[:300]!r}")
        push = time.monotonic() - start
        rss_push = ferry.peak_rss_kib()

        start = time.monotonic()
        r = request(conn, "GET", f"/v2/big/blob/blobs/{blob_digest}")
        if r.status != 200:
            raise BenchError(f"GET blob: {r.status}")
        pulled = hashlib.sha256()
        got = 0
        while True:
            block = r.read(MIB)
            if not block:
                break
            pulled.update(block)
            got += len(block)
        pull = time.monotonic() - start
        if got != size or "sha256:" + pulled.hexdigest() != blob_digest:
            raise BenchError(f"GET blob: {got} bytes, digest sha256:{pulled.hexdigest()}, want {blob_digest}")
        ferry.alive()
        return {"push": push, "pull": pull, "rss_push_kib": rss_push, "rss_kib": ferry.peak_rss_kib()}
    finally:
        ferry.stop()
        shutil.rmtree(ferry.dir, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description="ferry serve: s3 driver (Garage) vs filesystem driver")
    ap.add_argument("--scale", choices=["full", "small"], default="full")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--blob-mib", type=int, default=1024, help="size of the big blob; 0 skips it")
    ap.add_argument("--chunks", type=int, default=8, help="PATCH requests the big blob is sent in")
    ap.add_argument("--ferry", type=Path, help="ferry binary to use (skips the build)")
    ap.add_argument("--no-build", action="store_true", help="use the already built release binary")
    args = ap.parse_args()

    for tool in ("skopeo", "garage"):
        if not shutil.which(tool) and not (Path.home() / ".cargo" / "bin" / tool).exists():
            log(f"{tool} not found (scripts/test-all.sh installs it)")
            return 2
    if args.ferry:
        ferry_bin = args.ferry.resolve()
    elif args.no_build:
        ferry_bin = Path(os.environ.get("CARGO_TARGET_DIR", registry.ROOT / "target")) / "release" / "ferry"
    else:
        ferry_bin = registry.build_ferry()

    workdir = Path(tempfile.mkdtemp(prefix="ferry-bench-s3-"))
    s3 = None
    try:
        s3 = Garage(workdir)
        meta, times, rss, failures = corpus_runs(args, ferry_bin, workdir, s3)
        big = big_blob(args, ferry_bin, workdir, s3) if args.blob_mib > 0 else None
    except (BenchError, subprocess.SubprocessError, OSError) as e:
        log(f"FAILED: {e}")
        return 1
    finally:
        if s3:
            s3.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    med = {n: {p: statistics.median(v) for p, v in ph.items()} for n, ph in times.items()}
    print(f"\ns3 driver benchmark: {len(meta['images'])} images ({meta['unique_blob_bytes'] / MIB:.0f} MiB unique), "
          f"scale {args.scale}, median of {args.runs} runs, Garage on 127.0.0.1")
    print("| | filesystem | s3 (Garage) | s3/filesystem |")
    print("|---|---:|---:|---:|")
    for phase in ("push", "pull"):
        f, s = med["ferry-fs"][phase], med["ferry-s3"][phase]
        print(f"| corpus {phase} | {f:.2f} s | {s:.2f} s | {s / f:.2f} |")
    f = med["ferry-fs"]["push"] + med["ferry-fs"]["pull"]
    s = med["ferry-s3"]["push"] + med["ferry-s3"]["pull"]
    print(f"| corpus push + pull | {f:.2f} s | {s:.2f} s | {s / f:.2f} |")
    fr, sr = max(rss["ferry-fs"]) / 1024, max(rss["ferry-s3"]) / 1024
    print(f"| peak RSS, corpus | {fr:.1f} MiB | {sr:.1f} MiB | {sr / fr:.2f} |")
    if big:
        print(f"\nbig blob on s3: {args.blob_mib} MiB in {args.chunks} PATCHes: push {big['push']:.1f} s, "
              f"pull {big['pull']:.1f} s; ferry peak RSS {big['rss_push_kib'] / 1024:.1f} MiB after the push, "
              f"{big['rss_kib'] / 1024:.1f} MiB after the pull")
    if failures:
        log(f"{failures} pulled digests differ from the corpus")
        return 1
    log("digests: every image pulled back from each driver matches the corpus")
    return 0


if __name__ == "__main__":
    sys.exit(main())
