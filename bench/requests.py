#!/usr/bin/env python3
"""Requests are the budget: `ferry sync` against `skopeo sync --all --preserve-digests` on
many small images, counting every HTTP request, between distribution registries
(docker-registry 2.8) on 127.0.0.1.

Corpus (seeded, built here over HTTP): REPOS repositories x TAGS tags (default 20 x 25 =
500 images), `many/rNN:vMM`. Each image is a one-layer OCI image: its own small layer
(a gzip'd tar of 1 KiB), its own config, and a base layer that every image shares; so the
corpus holds U = 2 x images + 1 distinct blobs.

Parts, each tool in the same run (tools alternate and the order flips every run):

1. cold: a sync into a fresh, empty destination registry; no-op: the same sync again.
   The request counts sit beside the minimum any syncer needs (docs in README.md):
     cold  source      = R tags/list + T manifest GETs + U blob GETs
           destination = R tags/list + 2 U (upload POST + PUT) + (R - 1) mounts of the
                         shared base + T manifest PUTs
     no-op source      = R tags/list + T manifest HEADs
           destination = T manifest HEADs
   (R repositories, T tags). ferry's no-op also lists each destination repository's tags
   (R more), the price of knowing in a cold sync which tags are missing. ferry runs with
   `--referrers none`, as skopeo copies no referrers and the minimum counts images alone.
2. warm, every tag immutable: ferry's no-op sync with `--immutable '^v'`, timed against
   skopeo's no-op sync of part 1; the minimum is R tags/list per side.
3. throttled: the source behind a proxy that limits manifest reads (GET and HEAD) with a
   token bucket (`--limit-burst` at once, `--limit-rate` a second after), answering 429
   with `Retry-After` and `RateLimit-Limit`/`RateLimit-Remaining`, as registries that
   throttle pulls do (default 5 a second, burst 5). Each tool does a cold sync of
   `--throttled-repos` (default 4) repositories
   through it (skopeo with `--retry-times 5`); reported: wall time, 429s, and the time an
   oracle that knows the bucket needs for the manifest GETs the minimum makes.

Every mirrored digest of every cold sync is checked. Exits non-zero if a sync fails or a
digest differs, never because of a ratio. Target (reported): ferry's warm immutable no-op
<= 0.1x skopeo's no-op time; ferry's cold and no-op counts <= 1.15x the minimum.

Usage: bench/requests.py [--repos N] [--tags N] [--runs N] [--proc N] [--ferry PATH]
                         [--no-build] [--throttled-repos N] [--limit-burst N] [--limit-rate N]
"""

import argparse
import gzip
import hashlib
import http.client
import io
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.dont_write_bytecode = True
from registry import BenchError, build_ferry, log
from sync import (SIDES, Registry, fmt_s, fresh_skopeo_cache, private_mounts, release_skopeo_caches,
                  table)

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
TOOLS = ("ferry", "skopeo")


def layer(name: str, payload: bytes) -> bytes:
    """A gzip'd tar holding one file, byte for byte the same on every build."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(payload), 0, 0o644
        tar.addfile(info, io.BytesIO(payload))
    return gzip.compress(raw.getvalue(), mtime=0)


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Pusher:
    """Pushes blobs and manifests to one registry over one keep-alive connection."""

    def __init__(self, host: str):
        self.host = host
        self.conn = http.client.HTTPConnection(host, timeout=30)

    def call(self, method: str, path: str, body: bytes = b"", headers: dict = None) -> http.client.HTTPResponse:
        self.conn.request(method, path, body=body, headers=headers or {})
        r = self.conn.getresponse()
        r.read()
        return r

    def blob(self, repo: str, data: bytes) -> dict:
        digest = sha(data)
        r = self.call("POST", f"/v2/{repo}/blobs/uploads/")
        if r.status != 202:
            raise BenchError(f"upload to {repo}: HTTP {r.status}")
        location = r.getheader("Location")
        path = location.split(self.host, 1)[-1]
        sep = "&" if "?" in path else "?"
        r = self.call("PUT", f"{path}{sep}digest={digest}", data, {"Content-Type": "application/octet-stream"})
        if r.status != 201:
            raise BenchError(f"blob {digest} to {repo}: HTTP {r.status}")
        return {"digest": digest, "size": len(data)}

    def manifest(self, repo: str, tag: str, data: bytes) -> str:
        r = self.call("PUT", f"/v2/{repo}/manifests/{tag}", data, {"Content-Type": OCI_MANIFEST})
        if r.status != 201:
            raise BenchError(f"manifest {repo}:{tag}: HTTP {r.status}")
        return sha(data)


def seed(source: Registry, repos: int, tags: int) -> list:
    """Pushes the corpus; returns [{repo, tag, digest}]."""
    rng = random.Random(20261129)
    base = layer("base/os-release", bytes(rng.getrandbits(8) for _ in range(2048)))
    pusher = Pusher(source.host)
    images = []
    for r in range(repos):
        repo = f"many/r{r:02d}"
        base_desc = pusher.blob(repo, base)
        for t in range(tags):
            tag = f"v{t}"
            own = layer(f"app/{repo}/{tag}", bytes(rng.getrandbits(8) for _ in range(1024)))
            config = json.dumps({"architecture": "amd64", "os": "linux",
                                 "config": {"Labels": {"image": f"{repo}:{tag}"}},
                                 "rootfs": {"type": "layers", "diff_ids": []}}, sort_keys=True).encode()
            config_desc = pusher.blob(repo, config)
            own_desc = pusher.blob(repo, own)
            manifest = json.dumps({
                "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, **config_desc},
                "layers": [{"mediaType": OCI_LAYER, **base_desc}, {"mediaType": OCI_LAYER, **own_desc}],
            }).encode()
            images.append({"repo": repo, "tag": tag, "digest": pusher.manifest(repo, tag, manifest)})
    return images


def minimum(repos: int, tags: int) -> dict:
    """The fewest requests per side any syncer needs, as the docstring derives."""
    images = repos * tags
    unique = 2 * images + 1
    return {
        "cold": (repos + images + unique, repos + 2 * unique + (repos - 1) + images),
        "noop": (repos + images, images),
        "immutable": (repos, repos),
    }


class Limiter:
    """A token bucket over manifest reads, shared by the proxy's threads."""

    def __init__(self, burst: int, rate: float):
        self.burst, self.rate = burst, rate
        self.tokens, self.at = float(burst), time.monotonic()
        self.lock = threading.Lock()
        self.refused = 0

    def take(self):
        """None when a token was taken, else the whole seconds until one is back."""
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
            self.at = now
            if self.tokens >= 1:
                self.tokens -= 1
                return None
            self.refused += 1
            return max(1, int(-(-(1 - self.tokens) // self.rate)))


def throttling_proxy(upstream: str, limiter: Limiter) -> ThreadingHTTPServer:
    """A read-only proxy in front of `upstream` (host:port) whose manifest reads go through
    `limiter`; listens on a free loopback port, serves in a thread."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def relay(self):
            if "/manifests/" in self.path:
                wait = limiter.take()
                if wait is not None:
                    body = b'{"errors":[{"code":"TOOMANYREQUESTS","message":"rate limited"}]}'
                    self.send_response(429)
                    self.send_header("Retry-After", str(wait))
                    self.send_header("RateLimit-Limit", f"{limiter.rate:.0f};w=1")
                    self.send_header("RateLimit-Remaining", "0")
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(body)
                    return
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            conn = http.client.HTTPConnection(upstream, timeout=60)
            # Every header as sent, repeated ones (several Accept) included.
            conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            conn.putheader("Host", upstream)
            for k, v in self.headers.items():
                if k.lower() not in ("host", "connection"):
                    conn.putheader(k, v)
            conn.endheaders(body)
            r = conn.getresponse()
            data = r.read()
            self.send_response(r.status)
            for k, v in r.getheaders():
                if k.lower() not in ("connection", "transfer-encoding", "content-length"):
                    self.send_header(k, v.replace(upstream, f"127.0.0.1:{self.server.server_port}"))
            self.send_header("Content-Length", str(r.getheader("Content-Length") or len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            conn.close()

        do_GET = do_HEAD = relay

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def command(tool: str, args, workdir: Path, source_host: str, destination: Registry, repos: list,
            extra: list) -> list:
    job = workdir / f"{tool}-{destination.port}-{len(repos)}"
    if tool == "ferry":
        images = {f"{source_host}/{r}": f"{destination.host}/mirror/{r.rsplit('/', 1)[-1]}" for r in repos}
        job.with_suffix(".json").write_text(json.dumps(images))
        # Images alone, as skopeo copies them and as the minimum counts them (ferry's
        # default --referrers all adds a referrers request per manifest; README: Benchmarks).
        return [str(args.ferry_bin), "sync", "--images", str(job.with_suffix(".json")), "--proc", str(args.proc),
                "--no-docker-config", "--progress", "plain", "--referrers", "none", *extra]
    spec = {source_host: {"tls-verify": False, "images": {r: [] for r in repos}}}
    job.with_suffix(".yaml").write_text(json.dumps(spec))
    return ["skopeo", "sync", "--all", "--preserve-digests", "--src", "yaml", "--dest", "docker",
            "--dest-tls-verify=false", *extra, str(job.with_suffix(".yaml")), f"{destination.host}/mirror"]


def run(cmd: list, env: dict) -> float:
    start = time.monotonic()
    r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=1800)
    wall = time.monotonic() - start
    if r.returncode != 0:
        tail = (r.stdout + r.stderr).decode(errors="replace")[-3000:]
        raise BenchError(f"failed ({r.returncode}): {' '.join(cmd)}\n{tail}")
    return wall


def measured(cmd: list, env: dict, source: Registry, destination: Registry) -> dict:
    marks = (source.settled(), destination.settled())
    wall = run(cmd, env)
    source.settled()
    destination.settled()
    return {"wall": wall, "source": source.classes_since(marks[0]),
            "destination": destination.classes_since(marks[1])}


def check(destination: Registry, images: list, who: str) -> int:
    bad = 0
    for i in images:
        got = destination.digest(f"mirror/{i['repo'].rsplit('/', 1)[-1]}", i["tag"])
        if got != i["digest"]:
            log(f"DIGEST MISMATCH {who}: {i['repo']}:{i['tag']} is {got}, want {i['digest']}")
            bad += 1
    return bad


def sides(result: dict) -> tuple:
    return tuple(sum(result[side].values()) for side in SIDES)


def main() -> int:
    ap = argparse.ArgumentParser(description="request counts on many small images, ferry vs skopeo")
    ap.add_argument("--repos", type=int, default=20)
    ap.add_argument("--tags", type=int, default=25)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--proc", type=int, default=5)
    ap.add_argument("--ferry", type=Path)
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--throttled-repos", type=int, default=4)
    ap.add_argument("--limit-burst", type=int, default=5)
    ap.add_argument("--limit-rate", type=float, default=5.0)
    ap.add_argument("--throttled-only", action="store_true", help="run only part 3")
    args = ap.parse_args()
    for tool in ("skopeo", "docker-registry"):
        if not shutil.which(tool):
            log(f"{tool} not found (apt-get install -y docker-registry skopeo)")
            return 2
    isolated = private_mounts()
    if args.ferry:
        args.ferry_bin = args.ferry.resolve()
    elif args.no_build:
        target = Path(os.environ.get("CARGO_TARGET_DIR", Path(__file__).resolve().parents[1] / "target"))
        args.ferry_bin = target / "release" / "ferry"
    else:
        args.ferry_bin = build_ferry()
    workdir = Path(tempfile.mkdtemp(prefix="ferry-bench-requests-"))
    live = []
    results = {t: {"cold": [], "noop": []} for t in TOOLS}
    immutable, throttled = [], {}
    failures = 0
    try:
        fresh_skopeo_cache(workdir)
        source = Registry(workdir)
        source.start()
        live.append(source)
        start = time.monotonic()
        images = seed(source, args.repos, args.tags)
        repos = sorted({i["repo"] for i in images})
        log(f"seeded {len(images)} images in {len(repos)} repositories in {time.monotonic() - start:.1f} s; "
            f"skopeo's blob-info cache: {'fresh per run' if isolated or os.geteuid() != 0 else 'shared'}")
        for n in range(0 if args.throttled_only else args.runs):
            order = TOOLS if n % 2 == 0 else TOOLS[::-1]
            for tool in order:
                cache = fresh_skopeo_cache(workdir)
                env = dict(os.environ)
                if tool == "skopeo" and os.geteuid() != 0:
                    env["XDG_DATA_HOME"] = str(cache)
                destination = Registry(workdir)
                destination.start()
                live.append(destination)
                cmd = command(tool, args, workdir, source.host, destination, repos, [])
                for phase in ("cold", "noop"):
                    r = measured(cmd, env, source, destination)
                    results[tool][phase].append(r)
                    log(f"  run {n + 1} {tool:<6} {phase:<4} {fmt_s(r['wall']):>8}  "
                        f"{' + '.join(map(str, sides(r)))} requests")
                    if phase == "cold":
                        failures += check(destination, images, tool)
                if tool == "ferry":
                    warm = command(tool, args, workdir, source.host, destination, repos, ["--immutable", "^v"])
                    r = measured(warm, env, source, destination)
                    immutable.append(r)
                    log(f"  run {n + 1} ferry  warm, immutable {fmt_s(r['wall']):>8}  "
                        f"{' + '.join(map(str, sides(r)))} requests")
                destination.stop()
                live.remove(destination)
                shutil.rmtree(destination.dir, ignore_errors=True)
        # Throttled: a few repositories through a token bucket on manifest reads.
        subset = repos[:args.throttled_repos]
        subset_images = [i for i in images if i["repo"] in subset]
        for tool in TOOLS:
            limiter = Limiter(args.limit_burst, args.limit_rate)
            proxy = throttling_proxy(source.host, limiter)
            destination = Registry(workdir)
            destination.start()
            live.append(destination)
            extra = ["--retry-times", "5"] if tool == "skopeo" else []
            cmd = command(tool, args, workdir, f"127.0.0.1:{proxy.server_port}", destination, subset, extra)
            env = dict(os.environ)
            try:
                wall = run(cmd, env)
                failures += check(destination, subset_images, f"{tool} throttled")
                throttled[tool] = (wall, limiter.refused, None)
            except BenchError as e:
                throttled[tool] = (None, limiter.refused, str(e).splitlines()[-1][:160])
                log(f"  throttled {tool} failed: {throttled[tool][2]}")
            proxy.shutdown()
            destination.stop()
            live.remove(destination)
    except (BenchError, subprocess.SubprocessError, OSError) as e:
        log(f"FAILED: {e}")
        return 1
    finally:
        for server in live:
            server.stop()
        release_skopeo_caches()
        shutil.rmtree(workdir, ignore_errors=True)

    if not args.throttled_only:
        report(args, images, results, immutable)
    report_throttled(args, repos, images, throttled)
    if failures:
        log(f"{failures} mirrored digests differ")
        return 1
    log("digests: every mirrored tag matches the source")
    return 0


def report(args, images: list, results: dict, immutable: list) -> None:
    least = minimum(args.repos, args.tags)
    med = lambda rs, f: statistics.median(f(r) for r in rs)
    print(f"\nrequests benchmark: {len(images)} images ({args.repos} repositories x {args.tags} tags, one own "
          f"layer and config each, one shared base layer), median of {args.runs} runs, ferry --proc {args.proc}")
    rows = []
    ratios = {}
    for phase, label in (("cold", "cold sync"), ("noop", "no-op sync")):
        cells = []
        for tool in TOOLS:
            s, d = (med(results[tool][phase], lambda r, side=side: sum(r[side].values())) for side in SIDES)
            cells.append(f"{s:.0f} + {d:.0f}")
            if tool == "ferry":
                ratios[phase] = (s + d) / sum(least[phase])
        mins, mind = least[phase]
        rows.append((f"{label}, HTTP requests (source + destination)", *cells, f"{mins} + {mind}",
                     f"{ratios[phase]:.2f}"))
    s, d = (med(immutable, lambda r, side=side: sum(r[side].values())) for side in SIDES)
    ratios["immutable"] = (s + d) / sum(least["immutable"])
    rows.append(("warm no-op, every tag immutable (ferry --immutable '^v')", f"{s:.0f} + {d:.0f}", "-",
                 " + ".join(map(str, least["immutable"])), f"{ratios['immutable']:.2f}"))
    table(("", "ferry", "skopeo", "minimum", "ferry/minimum"), rows)

    print()
    rows = []
    for phase, label in (("cold", "cold sync"), ("noop", "no-op sync")):
        f, k = (med(results[t][phase], lambda r: r["wall"]) for t in TOOLS)
        rows.append((f"{label}, wall time", fmt_s(f), fmt_s(k), f"{f / k:.2f}"))
    warm = med(immutable, lambda r: r["wall"])
    skopeo_noop = med(results["skopeo"]["noop"], lambda r: r["wall"])
    rows.append(("warm immutable no-op (ferry) vs no-op (skopeo), wall time", fmt_s(warm), fmt_s(skopeo_noop),
                 f"{warm / skopeo_noop:.2f}"))
    table(("", "ferry", "skopeo", "ferry/skopeo"), rows)
    print("(per-run seconds: " + "; ".join(
        f"{t} {p} " + ",".join(f"{r['wall']:.3f}" for r in results[t][p]) for p in ("cold", "noop") for t in TOOLS)
        + "; ferry immutable " + ",".join(f"{r['wall']:.3f}" for r in immutable) + ")")
    print("\ntargets (reported, not asserted):")
    for phase in ("cold", "noop"):
        print(f"  ferry {phase} requests <= 1.15x the minimum: {ratios[phase]:.2f} "
              f"{'met' if ratios[phase] <= 1.15 else 'MISSED'}")
    print(f"  warm immutable no-op <= 0.1x skopeo's no-op time: {warm / skopeo_noop:.2f} "
          f"{'met' if warm / skopeo_noop <= 0.1 else 'MISSED'}")


def report_throttled(args, repos: list, images: list, throttled: dict) -> None:
    subset = repos[:args.throttled_repos]
    subset_images = [i for i in images if i["repo"] in subset]
    print()
    rows = []
    reads = len(subset_images)
    oracle = max(0.0, (reads - args.limit_burst) / args.limit_rate)
    for tool_label, key in (("throttled cold sync, wall time", 0), ("throttled cold sync, 429s", 1)):
        cells = []
        for tool in TOOLS:
            wall, refused, error = throttled[tool]
            if key == 0:
                cells.append(fmt_s(wall) if wall is not None else "failed")
            else:
                cells.append(str(refused))
        ratio = (f"{throttled['ferry'][0] / throttled['skopeo'][0]:.2f}"
                 if key == 0 and throttled["ferry"][0] and throttled["skopeo"][0] else "-")
        rows.append((tool_label, *cells, ratio))
    table(("", "ferry", "skopeo", "ferry/skopeo"), rows)
    print(f"(throttled: {len(subset_images)} images in {len(subset)} repositories, manifest reads limited to "
          f"{args.limit_rate:.0f}/s, burst {args.limit_burst}; an oracle sends the {reads} manifest GETs the minimum "
          f"needs in {oracle:.1f} s; skopeo runs with --retry-times 5)")
    for tool in TOOLS:
        if throttled[tool][2]:
            print(f"({tool} throttled: {throttled[tool][2]})")


if __name__ == "__main__":
    sys.exit(main())
