#!/usr/bin/env python3
"""What the edge handler uses of a Worker's limits, measured in workerd.

The handler (wasm-demo/, ferry-wasm) runs in workerd, Cloudflare's open-source Workers
runtime, in front of two `ferry serve` registries (filesystem storage). Through its job
relay (`POST /jobs`, streamed NDJSON) it copies:

* one image with one large generated layer (BLOB_MIB MiB, random bytes, so nothing
  compresses or deduplicates): while it streams, workerd's VmRSS is sampled from
  /proc every 50 ms;
* one small image, and N small images (one repository, N tags): the subrequests a job
  makes;
* a whole-registry diff of the N tags;
* the large image once more, to another repository, forcing a full garbage collection
  every second over workerd's V8 inspector (`--inspector-addr`): what is still live then
  (V8's heap and its ArrayBuffers, and VmRSS) is what an isolate near its limit holds.

Per job: wall time; workerd's CPU time (utime + stime from /proc/PID/stat, before and
after); workerd's peak RSS during the job (the most VmRSS sampled) beside its RSS before
it; and the subrequests (the requests both registries logged, "finished processing
request", during the job). Then the CPU one relay-user check costs (PBKDF2, 100,000
iterations): RUNS authenticated requests that stop right after the check.

Figures are reported, never asserted (a local workerd enforces no limit); the script
fails only when a job fails or a copied digest differs. The limits it is read against
are Cloudflare's published ones: 128 MB of memory per isolate, 50 subrequests per
request on the free plan (1,000 on paid plans), 10 ms of CPU per request on the free
plan (30 s by default on paid plans).

Needs web/pkg (`just wasm`) and node_modules (`npm ci`, for workerd).

Usage: bench/edge_limits.py [--blob-mib 512] [--images 20] [--ferry PATH] [--no-build]
"""

import argparse
import base64
import hashlib
import http.client
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from registry import BenchError, Ferry, build_ferry, free_port, log  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024
WORKERD = ROOT / "node_modules/@cloudflare/workerd-linux-64/bin/workerd"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
USER, PASSWORD = "bench", "edge-bench-Pa55"
TICKS = os.sysconf("SC_CLK_TCK")


def request(url: str, method: str, path: str, body=None, headers=None, length=None):
    """One request; returns (status, headers, body bytes)."""
    host = url.split("//", 1)[1]
    conn = http.client.HTTPConnection(host, timeout=600)
    headers = dict(headers or {})
    if length is not None:
        headers["Content-Length"] = str(length)
    conn.request(method, path, body=body, headers=headers)
    answer = conn.getresponse()
    data = answer.read()
    conn.close()
    return answer.status, {k.lower(): v for k, v in answer.getheaders()}, data


def push_blob(url: str, repo: str, digest: str, size: int, body) -> None:
    status, headers, data = request(url, "POST", f"/v2/{repo}/blobs/uploads/")
    if status != 202:
        raise BenchError(f"opening an upload in {repo}: HTTP {status} {data[:200]!r}")
    location = headers["location"]
    path = location.split("//", 1)[1].split("/", 1)[1] if "//" in location else location.lstrip("/")
    sep = "&" if "?" in path else "?"
    status, _, data = request(url, "PUT", f"/{path}{sep}digest={digest}", body=body, length=size,
                              headers={"Content-Type": "application/octet-stream"})
    if status != 201:
        raise BenchError(f"uploading {digest} to {repo}: HTTP {status} {data[:200]!r}")


def push_small(url: str, repo: str, data: bytes) -> dict:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    push_blob(url, repo, digest, len(data), data)
    return {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest, "size": len(data)}


def push_image(url: str, repo: str, tag: str, layer: dict) -> str:
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    config_desc = push_small(url, repo, config)
    config_desc["mediaType"] = "application/vnd.oci.image.config.v1+json"
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config_desc,
                           "layers": [layer]}).encode()
    status, _, data = request(url, "PUT", f"/v2/{repo}/manifests/{tag}", body=manifest,
                              headers={"Content-Type": OCI_MANIFEST})
    if status != 201:
        raise BenchError(f"pushing {repo}:{tag}: HTTP {status} {data[:200]!r}")
    return "sha256:" + hashlib.sha256(manifest).hexdigest()


def big_layer(path: Path, mib: int) -> tuple:
    """Writes `mib` MiB of random bytes to `path`, one MiB at a time; returns (digest, size)."""
    sha = hashlib.sha256()
    with open(path, "wb") as f:
        for _ in range(mib):
            chunk = os.urandom(MIB)
            sha.update(chunk)
            f.write(chunk)
    return "sha256:" + sha.hexdigest(), mib * MIB


def head_digest(url: str, repo: str, reference: str):
    status, headers, _ = request(url, "HEAD", f"/v2/{repo}/manifests/{reference}", headers={"Accept": OCI_MANIFEST})
    return headers.get("docker-content-digest") if status == 200 else None


class Inspector:
    """The V8 inspector protocol over a WebSocket (RFC 6455), the least of it: text frames."""

    def __init__(self, port: int):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=10) as answer:
            target = json.load(answer)[0]["webSocketDebuggerUrl"]
        path = "/" + target.split("//", 1)[1].split("/", 1)[1]
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise BenchError(f"the inspector refused the WebSocket: {head[:200]!r}")
        self.next_id = 0

    def _recv_exact(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            part = self.sock.recv(n - len(data))
            if not part:
                raise BenchError("the inspector closed its WebSocket")
            data += part
        return data

    def call(self, method: str) -> dict:
        self.next_id += 1
        payload = json.dumps({"id": self.next_id, "method": method}).encode()
        mask = os.urandom(4)
        size = len(payload)
        header = struct.pack("!BB", 0x81, 0x80 | size) if size < 126 else struct.pack("!BBH", 0x81, 0x80 | 126, size)
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
        while True:
            first, second = self._recv_exact(2)
            size = second & 0x7F
            if size == 126:
                size = struct.unpack("!H", self._recv_exact(2))[0]
            elif size == 127:
                size = struct.unpack("!Q", self._recv_exact(8))[0]
            message = self._recv_exact(size)
            if first & 0x0F == 1:
                answer = json.loads(message)
                if answer.get("id") == self.next_id:
                    return answer.get("result", {})


class Workerd:
    """workerd serving wasm-demo/workerd.capnp on a free port, with its V8 inspector."""

    def __init__(self, workdir: Path, users: str, allow: str):
        self.port = free_port()
        self.inspector_port = free_port()
        env = dict(os.environ, FERRY_RELAY_USERS=users, FERRY_RELAY_ALLOW=allow)
        self.log = open(workdir / "workerd.log", "wb")
        self.proc = subprocess.Popen(
            [str(WORKERD), "serve", str(ROOT / "wasm-demo/workerd.capnp"), "--experimental",
             "--socket-addr", f"http=127.0.0.1:{self.port}", "--inspector-addr", f"127.0.0.1:{self.inspector_port}"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"workerd exited with {self.proc.returncode}; see {workdir / 'workerd.log'}")
            try:
                request(self.url, "GET", "/nothing")
                return
            except OSError:
                time.sleep(0.05)
        raise BenchError("workerd did not start listening")

    def cpu_s(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        # utime and stime are fields 14 and 15 of proc(5); fields[0] here is field 3.
        return (int(fields[11]) + int(fields[12])) / TICKS

    def rss_kib(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


class RssSampler(threading.Thread):
    """VmRSS every 50 ms; with an inspector, also every second a full collection (what an
    isolate near its memory limit does), then VmRSS and V8's heap: the memory still live."""

    def __init__(self, workerd: Workerd, inspector):
        super().__init__(daemon=True)
        self.workerd = workerd
        self.inspector = inspector
        self.peak_kib = 0
        self.live_kib = 0
        self.heap_used = 0
        self.usage = {}
        self.stop_flag = threading.Event()

    def run(self) -> None:
        last_gc = time.monotonic()
        while not self.stop_flag.is_set():
            self.peak_kib = max(self.peak_kib, self.workerd.rss_kib())
            if self.inspector and time.monotonic() - last_gc >= 1:
                self.inspector.call("HeapProfiler.collectGarbage")
                self.live_kib = max(self.live_kib, self.workerd.rss_kib())
                usage = self.inspector.call("Runtime.getHeapUsage")
                # V8's heap, and the ArrayBuffers' bytes (wasm memory, chunks) outside it.
                self.heap_used = max(self.heap_used, usage.get("usedSize", 0) + usage.get("backingStorageSize", 0))
                self.usage = usage
                last_gc = time.monotonic()
            time.sleep(0.05)


AUTH = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


def run_job(workerd: Workerd, registries: list, body: dict, inspector=None) -> dict:
    """Runs one job through workerd; its figures, and its last line. With `inspector`, the
    memory still live is sampled too (by forcing collections, which costs CPU)."""
    before_requests = sum(r.requests() for r in registries)
    before_cpu = workerd.cpu_s()
    before_rss = workerd.rss_kib()
    sampler = RssSampler(workerd, inspector)
    sampler.start()
    start = time.monotonic()
    host = workerd.url.split("//", 1)[1]
    conn = http.client.HTTPConnection(host, timeout=3600)
    conn.request("POST", "/jobs", body=json.dumps(body),
                 headers={"Content-Type": "application/json", "Authorization": AUTH})
    answer = conn.getresponse()
    if answer.status != 200:
        raise BenchError(f"POST /jobs: HTTP {answer.status} {answer.read()[:300]!r}")
    lines = 0
    last = None
    while True:
        line = answer.readline()
        if not line:
            break
        lines += 1
        last = json.loads(line)
    conn.close()
    wall = time.monotonic() - start
    sampler.stop_flag.set()
    sampler.join()
    time.sleep(0.3)  # the registries write their last log lines
    return {
        "wall_s": wall,
        "cpu_s": workerd.cpu_s() - before_cpu,
        "rss_before_mib": before_rss / 1024,
        "rss_peak_mib": max(sampler.peak_kib, before_rss) / 1024,
        "rss_live_mib": sampler.live_kib / 1024,
        "heap_used_mib": sampler.heap_used / MIB,
        "usage": sampler.usage,
        "subrequests": sum(r.requests() for r in registries) - before_requests,
        "lines": lines,
        "last": last,
    }


def auth_cpu_ms(workerd: Workerd, runs: int) -> float:
    """CPU per authenticated request that ends right after the check (an unknown job: 404)."""
    before = workerd.cpu_s()
    for _ in range(runs):
        status, _, _ = request(workerd.url, "GET", "/jobs/0123/events", headers={"Authorization": AUTH})
        if status != 404:
            raise BenchError(f"an authenticated GET of an unknown job answered {status}, not 404")
    return (workerd.cpu_s() - before) * 1000 / runs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--blob-mib", type=int, default=512)
    ap.add_argument("--images", type=int, default=20, help="images of the N-image job")
    ap.add_argument("--auth-runs", type=int, default=20)
    ap.add_argument("--ferry", type=Path, help="the ferry binary (default: built with --release)")
    ap.add_argument("--no-build", action="store_true", help="use target/release/ferry as it is")
    args = ap.parse_args()
    if not WORKERD.exists():
        raise BenchError(f"{WORKERD} is missing: npm ci installs workerd")
    if not (ROOT / "web/pkg/ferry_wasm_bg.wasm").exists():
        raise BenchError("web/pkg is missing: just wasm builds it")
    ferry = args.ferry or (ROOT / "target/release/ferry" if args.no_build else build_ferry())

    workdir = Path(tempfile.mkdtemp(prefix="ferry-edge-bench-"))
    source, destination = Ferry(workdir, ferry), Ferry(workdir, ferry)
    workerd = None
    try:
        for server in (source, destination):
            server.start()
        log(f"generating a {args.blob_mib} MiB layer")
        layer_path = workdir / "layer"
        digest, size = big_layer(layer_path, args.blob_mib)
        with open(layer_path, "rb") as f:
            push_blob(source.url, "big/app", digest, size, f)
        layer_path.unlink()
        big = push_image(source.url, "big/app", "1", {
            "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest, "size": size})
        small = {}
        for i in range(args.images):
            layer = push_small(source.url, "many/app", os.urandom(4096))
            small[f"t{i}"] = push_image(source.url, "many/app", f"t{i}", layer)

        users = subprocess.run(["node", str(ROOT / "wasm-demo/hash-password.mjs"), USER], input=PASSWORD + "\n",
                               check=True, capture_output=True, text=True).stdout.strip()
        workerd = Workerd(workdir, users, f"{source.host} {destination.host}")
        registries = [source, destination]

        def copy(repo: str, tags: list, to: str, inspector=None) -> dict:
            images = [{"source": f"{source.url}/{repo}:{t}", "destination": f"{destination.url}/{to}:{t}"} for t in tags]
            figures = run_job(workerd, registries, {"kind": "copy", "images": images}, inspector)
            last = figures["last"]
            if last.get("event") != "job_finished" or last.get("status") != "succeeded":
                raise BenchError(f"the copy of {repo} ended with {json.dumps(last)[:500]}")
            return figures

        results = []
        log("one small image")
        results.append(("copy, 1 small image", copy("many/app", ["t0"], "one/app")))
        log(f"{args.images} small images")
        results.append((f"copy, {args.images} small images", copy("many/app", list(small), "many/app")))
        log(f"one image with a {args.blob_mib} MiB layer")
        results.append((f"copy, 1 image of {args.blob_mib} MiB", copy("big/app", ["1"], "big/app")))
        log("the same image again to another repository, collecting garbage every second")
        inspector = Inspector(workerd.inspector_port)
        collected = copy("big/app", ["1"], "again/app", inspector)
        log(f"a whole-registry diff ({args.images + 1} tags in sync)")
        diff = run_job(workerd, registries, {"kind": "diff", "source": source.url, "destination": destination.url,
                                             "repositories": ["many/app", "big/app"]})
        if diff["last"].get("event") != "diff_finished":
            raise BenchError(f"the diff ended with {json.dumps(diff['last'])[:500]}")
        results.append((f"diff, 2 repositories, {args.images + 1} tags", diff))

        for tag, want in small.items():
            if head_digest(destination.url, "many/app", tag) != want:
                raise BenchError(f"many/app:{tag} differs at the destination")
        if head_digest(destination.url, "big/app", "1") != big:
            raise BenchError("big/app:1 differs at the destination")
        per_auth = auth_cpu_ms(workerd, args.auth_runs)

        print(f"\nThe edge handler in workerd (ferry-wasm {os.path.getsize(ROOT / 'web/pkg/ferry_wasm_bg.wasm') // 1024} KiB), "
              f"registries: {ferry}")
        print(f"{'job':34} {'wall s':>8} {'CPU s':>8} {'RSS before MiB':>15} {'RSS peak MiB':>13} {'subrequests':>12}")
        for name, f in results:
            print(f"{name:34} {f['wall_s']:8.2f} {f['cpu_s']:8.2f} {f['rss_before_mib']:15.1f} "
                  f"{f['rss_peak_mib']:13.1f} {f['subrequests']:12}")
        big_job = results[2][1]
        print(f"lines of the {args.blob_mib} MiB copy: {big_job['lines']}")
        print(f"\nthe {args.blob_mib} MiB copy again, with a full collection every second (what an isolate near its "
              f"limit does): RSS at most {collected['rss_live_mib']:.0f} MiB after a collection, V8 heap at most "
              f"{collected['heap_used_mib']:.1f} MiB used, RSS peak {collected['rss_peak_mib']:.0f} MiB, "
              f"{collected['wall_s']:.1f} s; last heap usage {collected['usage']}")
        print(f"\n{args.blob_mib} MiB through the handler: {args.blob_mib / big_job['wall_s']:.0f} MiB/s wall, "
              f"{big_job['cpu_s'] * 1000 / args.blob_mib:.1f} ms of CPU per MiB")
        print(f"one relay-user check (PBKDF2-SHA-256, 100,000 iterations): {per_auth:.1f} ms of CPU "
              f"(mean of {args.auth_runs} requests)")
        return 0
    finally:
        if workerd:
            workerd.stop()
        for server in (source, destination):
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        log(f"error: {e}")
        sys.exit(1)
