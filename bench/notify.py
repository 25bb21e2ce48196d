#!/usr/bin/env python3
"""Benchmark `ferry serve` pushes with a notification endpoint that is down.

What is measured, in the same run, for three servers started fresh (new storage, new port):

* `none`: no notifications;
* `dead`: one endpoint that accepts connections and never answers (a hung sink);
* `refused`: one endpoint on a port where nothing listens.

Each pushes `--pushes` small images (a config blob, a layer blob of `--blob-kib` KiB and a
manifest: three events each) with plain HTTP from this script, one after the other. The
wall time of all pushes, the server's peak RSS (`VmHWM`) and the queue-overflow lines of
its log are reported; ratios are against `none`, so 1.00 means a dead endpoint costs the
pushes nothing. The modes alternate, and the order flips every run; times are medians.

The endpoint's queue is `--queue` events, so a dead endpoint drops the rest (and says so
in one log line, then every hundredth); memory stays flat however many pushes there are.

Usage: bench/notify.py [--runs N] [--pushes N] [--blob-kib N] [--queue N] [--ferry PATH] [--no-build]
"""

import argparse
import hashlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dead_sink() -> str:
    """A listener that accepts and never answers; returns its URL."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    held = []

    def accept() -> None:
        while True:
            conn, _ = listener.accept()
            held.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}/events"


def start(ferry: Path, workdir: Path, endpoint: str | None, queue: int) -> tuple[subprocess.Popen, str, Path]:
    port = free_port()
    config = [f"addr: 127.0.0.1:{port}", "log: {level: warn}", f"storage: {{root: {workdir / 'data'}}}"]
    if endpoint:
        config += [
            "notifications:",
            "  endpoints:",
            f"    - {{name: sink, url: '{endpoint}', timeout_secs: 5, retries: 3, backoff_secs: 0.5, queue: {queue}}}",
        ]
    path = workdir / "ferry.yaml"
    path.write_text("\n".join(config) + "\n")
    log_path = workdir / "ferry.log"
    proc = subprocess.Popen(
        [str(ferry), "serve", "--config", str(path)], stdout=subprocess.PIPE, stderr=open(log_path, "w")
    )
    line = proc.stdout.readline().decode()
    url = line.strip().rsplit(" ", 1)[-1]
    if not url.startswith("http://"):
        raise SystemExit(f"ferry serve did not start: {line!r}, log: {log_path.read_text()}")
    return proc, url, log_path


def call(method: str, url: str, body: bytes = b"", content_type: str | None = None) -> int:
    req = urllib.request.Request(url, data=body if method != "GET" else None, method=method)
    if content_type:
        req.add_header("Content-Type", content_type)
    with urllib.request.urlopen(req, timeout=60) as r:
        r.read()
        return r.status


def push_all(url: str, pushes: int, blob_kib: int, seed: int) -> float:
    started = time.perf_counter()
    for i in range(pushes):
        config = json.dumps({"architecture": "amd64", "os": "linux", "n": i, "seed": seed}).encode()
        layer = os.urandom(blob_kib * 1024)
        for blob in (config, layer):
            digest = "sha256:" + hashlib.sha256(blob).hexdigest()
            assert call("POST", f"{url}/v2/bench/app/blobs/uploads/?digest={digest}", blob) == 201
        manifest = json.dumps({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": "sha256:" + hashlib.sha256(config).hexdigest(), "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": "sha256:" + hashlib.sha256(layer).hexdigest(), "size": len(layer)}],
        }).encode()
        assert call("PUT", f"{url}/v2/bench/app/manifests/t{i}", manifest,
                    "application/vnd.oci.image.manifest.v1+json") == 201
    return time.perf_counter() - started


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--pushes", type=int, default=200)
    ap.add_argument("--blob-kib", type=int, default=64)
    ap.add_argument("--queue", type=int, default=64)
    ap.add_argument("--ferry", type=Path, help="ferry binary to use (skips the build)")
    ap.add_argument("--no-build", action="store_true", help="use the already built release binary")
    args = ap.parse_args()
    ferry = args.ferry
    if ferry is None:
        if not args.no_build:
            log("building ferry (cargo build --release -p ferry-cli)")
            subprocess.run(["cargo", "build", "--release", "-p", "ferry-cli"], cwd=ROOT, check=True)
        meta = subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps"], cwd=ROOT,
                              check=True, capture_output=True, text=True)
        ferry = Path(json.loads(meta.stdout)["target_directory"]) / "release" / "ferry"
    dead = dead_sink()
    refused = f"http://127.0.0.1:{free_port()}/events"
    modes = {"none": None, "dead": dead, "refused": refused}
    times: dict[str, list[float]] = {m: [] for m in modes}
    rss: dict[str, int] = {m: 0 for m in modes}
    overflow: dict[str, str] = {m: "" for m in modes}
    for run in range(args.runs):
        order = list(modes) if run % 2 == 0 else list(reversed(modes))
        for mode in order:
            with tempfile.TemporaryDirectory(prefix=f"ferry-notify-{mode}-") as tmp:
                proc, url, log_path = start(ferry, Path(tmp), modes[mode], args.queue)
                try:
                    times[mode].append(push_all(url, args.pushes, args.blob_kib, run))
                    rss[mode] = max(rss[mode], peak_rss_kib(proc.pid))
                finally:
                    proc.terminate()
                    proc.wait()
                lines = [l for l in log_path.read_text().splitlines() if "notification queue full" in l]
                if lines:
                    overflow[mode] = f"{len(lines)} overflow line(s), last: {lines[-1].strip()[-120:]}"
    base = statistics.median(times["none"])
    print(f"{args.pushes} pushes of 2 blobs ({args.blob_kib} KiB layer) + 1 manifest, queue {args.queue}, "
          f"median of {args.runs} runs")
    for mode in modes:
        t = statistics.median(times[mode])
        print(f"  {mode:8} {t:7.2f} s  ratio {t / base:5.2f}  peak RSS {rss[mode] / 1024:6.1f} MiB  {overflow[mode]}")


if __name__ == "__main__":
    main()
