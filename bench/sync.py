#!/usr/bin/env python3
"""Benchmark `ferry sync` against `skopeo sync --all --preserve-digests` between two
distribution registries (docker-registry 2.8) on 127.0.0.1.

Setup: the synthetic corpus (bench/corpus.py) is pushed with `skopeo copy` into a source
registry once. Both tools then mirror the same set of images, every tag of every corpus
repository `SRC/<ns>/<name>` into `DST/mirror/<name>`:

* ferry: an image-syncer images file, `{"SRC/<ns>/<name>": "DST/mirror/<name>", ...}`
  (no tag: every tag), run as `ferry sync --images FILE --proc N --no-docker-config
  --referrers none` (skopeo copies no referrers, so neither does ferry here);
* skopeo: one `--src yaml` file listing every repository with an empty tag list (every
  tag), run as `skopeo sync --all --preserve-digests --src yaml --dest docker
  --dest-tls-verify=false FILE DST/mirror` (skopeo names the destination after the last
  path element, hence `mirror/<name>`).

What is measured, per tool and per run (default 3), in the same run:

* cold: a sync into a fresh, empty destination registry (new storage, new port);
* no-op: the same sync again right after, when everything is already there;
* wall time (the tool's process, from spawn to exit), peak RSS (`/usr/bin/time -f %M`),
  and the HTTP requests each registry received during the sync, read from distribution's
  access log and sorted by route class (`/v2/` ping, tags/list, manifest HEAD/GET/PUT,
  blob HEAD/GET, mount, upload POST/PATCH/PUT, other).

Within a run the tools alternate and the order flips every run, so machine noise is
shared. Times are medians over the runs, RSS the maximum, request counts the median.

skopeo keeps a blob-info cache (`/var/lib/containers/cache` for root, under
`$XDG_DATA_HOME` otherwise) that outlives a process. So that runs do not depend on what
an earlier run (or anything else on the machine) left there, each run gives skopeo a fresh,
empty cache directory: for root the script runs in a private mount namespace (`unshare
-m`) and bind-mounts the fresh directory over `/var/lib/containers/cache` before skopeo
starts (seeding gets one too, so the machine's cache is never touched); otherwise it sets
`XDG_DATA_HOME`. The no-op sync of a run keeps the cache its cold sync filled, as a mirror
job run twice would. ferry keeps no state between runs.

Fan-out (`--fanout N`, default 3; 0 skips): one source mirrored into N fresh destination
registries. ferry gets one images file whose values are lists of N destinations
(image-syncer's list value) and reads each blob from the source once for all of them;
skopeo has no list destinations and runs `skopeo sync` once per destination. Reported per
tool: wall time for all N, and the blob bytes and blob GETs the source served (from its
access log), against what ferry's own cold sync into one destination read (every blob once);
the target: the fan-out reads exactly that, each blob once for all N destinations.
Every destination's digests are checked as for the cold sync.

Referrers: after the runs, ferry syncs once more, cold then no-op, into a fresh destination
with its default `--referrers all`, and the report gives those requests beside the
`--referrers none` ones: what full fidelity costs when there are no referrers to copy (the
corpus has none; distribution has no referrers API, so ferry asks it once per registry and
then reads each manifest's tag-schema index).

Memory check: the corpus is rebuilt with the largest layer N times bigger (default 4,
every other blob unchanged) and one more cold sync per tool reports its peak RSS.

After every cold sync each destination tag's manifest digest is checked against the
corpus. The script exits non-zero if a sync fails, a registry dies, or a digest differs;
never because of a ratio (targets are reported, not asserted).

With `--tls`, every registry serves HTTPS with a private CA made for the run (openssl):
ferry trusts it through `--cert-dir HOST=DIR`, skopeo through `cert-dir` in its YAML and
`--dest-cert-dir`, both with verification on. The request counts are the same as over
plain HTTP: ferry's scheme probe is a handshake, not a request.

Usage: bench/sync.py [--scale full|small] [--runs N] [--proc N] [--largest-factor N]
                     [--fanout N] [--ferry PATH] [--no-build] [--keep] [--tls]
"""

import argparse
import json
import os
import re
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in bench/ for the import below
from registry import MIB, BenchError, Distribution, build_ferry, log, make_corpus, push_copies, run_phase

SKOPEO_CACHE = Path("/var/lib/containers/cache")
NS_MARK = "FERRY_BENCH_PRIVATE_MOUNTS"
BOUND = []  # skopeo cache directories bound over SKOPEO_CACHE, newest last
ACCESS = re.compile(r'"([A-Z]+) (\S+) HTTP/[0-9.]+" (\d{3}) ')
# The same, with the answer's body bytes (combined log format).
ACCESS_BYTES = re.compile(r'"([A-Z]+) (\S+) HTTP/[0-9.]+" (\d{3}) (\d+|-)')
ACCEPT = ", ".join([
    "application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
])
TOOLS = ("ferry", "skopeo")
# With --tls: {"cert", "key", "dir"} of the run's private CA and server certificate.
TLS = {}
SIDES = ("source", "destination")
# Route classes in the order the tables show them.
CLASSES = ["ping", "tags/list", "manifest HEAD", "manifest GET", "manifest PUT", "blob HEAD", "blob GET",
           "mount", "upload POST", "upload PATCH", "upload PUT", "referrers", "other"]


def route_class(method: str, target: str) -> str:
    """The route class of one request, after distribution's routes (v2/routes.go)."""
    path, _, query = target.partition("?")
    if path in ("/v2/", "/v2"):
        return "ping"
    if path.endswith("/tags/list"):
        return "tags/list"
    if "/referrers/" in path:
        return "referrers"
    if "/blobs/uploads" in path:
        if method == "POST" and "mount=" in query:
            return "mount"
        return f"upload {method}" if method in ("POST", "PATCH", "PUT") else "other"
    for kind in ("manifest", "blob"):
        if f"/{kind}s/" in path and method in ("HEAD", "GET", "PUT"):
            label = f"{kind} {method}"
            return label if label in CLASSES else "other"
    return "other"


def private_mounts() -> bool:
    """As root, re-runs this script in its own mount namespace, so that skopeo's cache
    directory can be swapped per run without touching the machine's. True once inside."""
    if os.environ.get(NS_MARK) == "1":
        return True
    if os.geteuid() != 0:
        return False
    probe = subprocess.run(["unshare", "-m", "true"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if probe.returncode != 0:
        log("unshare -m is not permitted: skopeo runs share /var/lib/containers/cache")
        return False
    os.environ[NS_MARK] = "1"
    sys.stdout.flush()
    os.execvp("unshare", ["unshare", "-m", "--propagation", "private", sys.executable, *sys.argv])


def fresh_skopeo_cache(workdir: Path) -> Path:
    """A new, empty directory for skopeo's blob-info cache. As root, inside the private mount
    namespace, it is bound over /var/lib/containers/cache for every skopeo started after."""
    cache = Path(tempfile.mkdtemp(prefix="skopeo-cache-", dir=workdir))
    if os.geteuid() == 0 and os.environ.get(NS_MARK) == "1":
        SKOPEO_CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "--bind", str(cache), str(SKOPEO_CACHE)], check=True)
        BOUND.append(cache)
    return cache


def release_skopeo_caches() -> None:
    """Undoes fresh_skopeo_cache's bind mounts: a mounted directory cannot be removed."""
    while BOUND:
        BOUND.pop()
        subprocess.run(["umount", str(SKOPEO_CACHE)], check=False)


def make_tls(workdir: Path) -> None:
    """A private CA, a server certificate for 127.0.0.1, and a cert dir holding only ca.crt
    (what skopeo's --cert-dir wants); urllib is taught to trust the CA too."""
    pki = workdir / "pki"
    certs = pki / "certs"
    certs.mkdir(parents=True)
    ssl_run = lambda *a: subprocess.run(["openssl", *a], cwd=pki, check=True, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    ssl_run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=bench CA")
    ssl_run("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=bench registry")
    (pki / "server.ext").write_text("basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\n"
                                    "extendedKeyUsage=serverAuth\n")
    ssl_run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.crt", "-days", "2", "-extfile", "server.ext")
    shutil.copy(pki / "ca.crt", certs / "ca.crt")
    TLS.update(cert=pki / "server.crt", key=pki / "server.key", dir=certs)
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    urllib.request.install_opener(urllib.request.build_opener(urllib.request.HTTPSHandler(context=context)))


class Registry(Distribution):
    """A distribution registry whose access log is read per phase; HTTPS with --tls."""

    def command(self) -> list:
        command = super().command()
        if TLS:
            config = self.dir / "config.yml"
            text = config.read_text().replace(
                f"http: {{addr: {self.host}}}",
                f"http: {{addr: {self.host}, tls: {{certificate: {TLS['cert']}, key: {TLS['key']}}}}}")
            config.write_text(text)
        return command

    @property
    def url(self) -> str:
        return f"{'https' if TLS else 'http'}://127.0.0.1:{self.port}"

    def lines(self) -> list:
        with open(self.log_path, errors="replace") as f:
            return [m.groups() for m in map(ACCESS.search, f) if m]

    def settled(self) -> int:
        """Number of logged requests once the log stops growing (a line lands after its answer)."""
        count, stable = len(self.lines()), 0
        while stable < 2:
            time.sleep(0.1)
            now = len(self.lines())
            stable = stable + 1 if now == count else 0
            count = now
        return count

    def blob_reads_since(self, mark: int) -> tuple:
        """Blob GETs answered 200 after the `mark`-th logged request, and their body bytes."""
        with open(self.log_path, errors="replace") as f:
            lines = [m.groups() for m in map(ACCESS_BYTES.search, f) if m][mark:]
        reads = [int(size) for method, target, status, size in lines
                 if method == "GET" and "/blobs/sha256:" in target and status == "200" and size != "-"]
        return len(reads), sum(reads)

    def classes_since(self, mark: int) -> Counter:
        return Counter(route_class(method, target) for method, target, _ in self.lines()[mark:])

    def digest(self, repo: str, tag: str) -> str:
        request = urllib.request.Request(f"{self.url}/v2/{repo}/manifests/{tag}", method="HEAD",
                                         headers={"Accept": ACCEPT})
        try:
            with urllib.request.urlopen(request, timeout=10) as r:
                return r.headers.get("Docker-Content-Digest", "")
        except OSError as e:
            return f"missing ({e})"


def mirror_name(repo: str) -> str:
    return "mirror/" + repo.rsplit("/", 1)[-1]


class Tool:
    """One of the two syncers, with its job written for a given source and destination."""

    def __init__(self, name: str, workdir: Path, ferry_bin: Path, proc: int, referrers: str = "none"):
        self.name, self.workdir, self.ferry_bin, self.proc = name, workdir, ferry_bin, proc
        self.referrers = referrers
        self.cache = None

    def fresh_cache(self) -> None:
        """A new, empty blob-info cache for skopeo, used from its next sync on."""
        if self.name == "skopeo":
            self.cache = fresh_skopeo_cache(self.workdir)

    def command(self, repos: list, source: Registry, destination: Registry, more: tuple = ()) -> list:
        """The sync into `destination`; ferry's into every one of `more` too, in one run."""
        job = self.workdir / f"{self.name}-{destination.port}"
        if self.name == "ferry":
            every = (destination, *more)
            images = {f"{source.host}/{r}": [f"{d.host}/{mirror_name(r)}" for d in every] if more
                      else f"{destination.host}/{mirror_name(r)}" for r in repos}
            job.with_suffix(".json").write_text(json.dumps(images, indent=1))
            trust = [a for r in (source, destination, *more) for a in ("--cert-dir", f"{r.host}={TLS['dir']}")] \
                if TLS else []
            return [str(self.ferry_bin), "sync", "--images", str(job.with_suffix(".json")), "--proc",
                    str(self.proc), "--no-docker-config", "--progress", "plain", "--referrers", self.referrers,
                    *trust]
        # JSON is YAML; an empty tag list means every tag.
        access = {"cert-dir": str(TLS["dir"])} if TLS else {"tls-verify": False}
        spec = {source.host: {**access, "images": {r: [] for r in repos}}}
        job.with_suffix(".yaml").write_text(json.dumps(spec, indent=1))
        dest = [f"--dest-cert-dir={TLS['dir']}"] if TLS else ["--dest-tls-verify=false"]
        return ["skopeo", "sync", "--all", "--preserve-digests", "--src", "yaml", "--dest", "docker",
                *dest, str(job.with_suffix(".yaml")), f"{destination.host}/mirror"]

    def run(self, command: list) -> tuple:
        """Runs one sync; returns (wall seconds, peak RSS KiB)."""
        env = dict(os.environ)
        if self.name == "skopeo" and os.geteuid() != 0 and self.cache:
            env["XDG_DATA_HOME"] = str(self.cache)  # not root: skopeo's cache lives under it
        rss_file = self.workdir / "rss"
        start = time.monotonic()
        r = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(rss_file), *command], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=1800)
        wall = time.monotonic() - start
        if r.returncode != 0:
            tail = (r.stdout + r.stderr).decode(errors="replace")[-3000:]
            raise BenchError(f"{self.name} failed ({r.returncode}): {' '.join(command)}\n{tail}")
        return wall, int(rss_file.read_text().split()[-1])


def sync_once(tool: Tool, repos: list, source: Registry, destination: Registry) -> dict:
    """One sync with its wall time, RSS and requests per class on each side."""
    command = tool.command(repos, source, destination)
    marks = (source.settled(), destination.settled())
    wall, rss = tool.run(command)
    source.settled()
    destination.settled()
    return {"wall": wall, "rss": rss, "source": source.classes_since(marks[0]),
            "destination": destination.classes_since(marks[1]), "reads": source.blob_reads_since(marks[0])}


def fanout_once(tool: Tool, repos: list, source: Registry, destinations: list) -> dict:
    """One mirror of the source into every destination: ferry in one run with list
    destinations, skopeo once per destination. Wall time for all, and what the source read."""
    mark = source.settled()
    if tool.name == "ferry":
        commands = [tool.command(repos, source, destinations[0], tuple(destinations[1:]))]
    else:
        commands = [tool.command(repos, source, d) for d in destinations]
    wall, rss = 0.0, 0
    for command in commands:
        w, r = tool.run(command)
        wall, rss = wall + w, max(rss, r)
    source.settled()
    gets, read = source.blob_reads_since(mark)
    return {"wall": wall, "rss": rss, "gets": gets, "read": read}


def check_mirror(destination: Registry, images: list, who: str) -> int:
    bad = 0
    for i in images:
        got = destination.digest(mirror_name(i["repo"]), i["tag"])
        if got != i["digest"]:
            log(f"DIGEST MISMATCH {who}: {mirror_name(i['repo'])}:{i['tag']} is {got}, want {i['digest']}")
            bad += 1
    return bad


def seeded_source(workdir: Path, corpus: Path, images: list) -> Registry:
    fresh_skopeo_cache(workdir)  # so that seeding leaves the machine's cache alone
    source = Registry(workdir)
    source.start()
    start = time.monotonic()
    run_phase(2, push_copies(corpus, images, source))
    source.alive()
    log(f"seeded the source {source.host} with {len(images)} images in {time.monotonic() - start:.1f} s")
    return source


def fmt_s(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds >= 0.1 else f"{seconds * 1000:.0f} ms"


def fmt_mib(kib: float) -> str:
    return f"{kib / 1024:.1f} MiB"


def table(header: tuple, rows: list) -> None:
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                                         for i, (c, w) in enumerate(zip(r, widths))) + " |"
    print(line(header))
    print("|" + "|".join("-" * (w + 1) + ":" if i else "-" * (w + 2) for i, w in enumerate(widths)) + "|")
    for r in rows:
        print(line(r))


def total(result: dict) -> int:
    return sum(result["source"].values()) + sum(result["destination"].values())


def report_fanout(meta: dict, args, fanout: dict, results: dict) -> None:
    # What one cold sync into one destination reads: every blob once (the corpus's unique
    # bytes also count the manifests its OCI layouts keep as blobs, read as manifests).
    once_gets, unique = results["ferry"]["cold"][0]["reads"]
    med = lambda tool, f: statistics.median(f(r) for r in fanout[tool])
    rows = []
    f, s = med("ferry", lambda r: r["wall"]), med("skopeo", lambda r: r["wall"])
    rows.append(("wall time, all destinations", fmt_s(f), fmt_s(s), f"{f / s:.2f}"))
    f, s = med("ferry", lambda r: r["read"]), med("skopeo", lambda r: r["read"])
    rows.append(("source blob bytes read", f"{f / MIB:.1f} MiB", f"{s / MIB:.1f} MiB", f"{f / s:.2f}"))
    rows.append(("  as a multiple of one cold sync's", f"{f / unique:.2f}×", f"{s / unique:.2f}×", ""))
    f, s = med("ferry", lambda r: r["gets"]), med("skopeo", lambda r: r["gets"])
    rows.append(("source blob GETs", f"{f:.0f}", f"{s:.0f}", f"{f / s:.2f}"))
    f, s = (max(r["rss"] for r in fanout[t]) for t in TOOLS)
    rows.append(("peak RSS", fmt_mib(f), fmt_mib(s), f"{f / s:.2f}"))
    print(f"\nfan-out: the source into {args.fanout} destinations ({unique / MIB:.1f} MiB of blobs in "
          f"{once_gets} blob GETs for one destination); ferry: one run with list destinations; skopeo: one sync "
          f"per destination; median of {len(fanout['ferry'])} runs")
    table(("", "ferry sync", "skopeo sync", "ferry/skopeo"), rows)
    once = all((r["gets"], r["read"]) == (once_gets, unique) for r in fanout["ferry"])
    print(f"  target: ferry reads each blob from the source exactly once ({once_gets} GETs, {unique} bytes, as one "
          f"cold sync): {'met' if once else 'MISSED'} "
          f"({', '.join(f'{g} GETs, {b} bytes' for g, b in ((r['gets'], r['read']) for r in fanout['ferry']))})")
    sys.stdout.flush()


def report(meta: dict, args, results: dict, big: dict, big_meta: dict, repos: list, full: dict) -> None:
    med = lambda tool, phase, f: statistics.median(f(r) for r in results[tool][phase])
    rows = []
    ratios = {}
    for phase, label in (("cold", "cold sync"), ("noop", "no-op sync")):
        f, s = med("ferry", phase, lambda r: r["wall"]), med("skopeo", phase, lambda r: r["wall"])
        ratios[phase] = f / s
        rows.append((f"{label}, wall time", fmt_s(f), fmt_s(s), f"{f / s:.2f}"))
    for phase, label in (("cold", "cold sync"), ("noop", "no-op sync")):
        f, s = (max(r["rss"] for r in results[t][phase]) for t in TOOLS)
        rows.append((f"{label}, peak RSS", fmt_mib(f), fmt_mib(s), f"{f / s:.2f}"))
        if big and phase == "cold":
            f, s = big["ferry"]["rss"], big["skopeo"]["rss"]
            rows.append((f"cold sync, peak RSS, largest layer ×{args.largest_factor}", fmt_mib(f), fmt_mib(s),
                         f"{f / s:.2f}"))
    for phase, label in (("cold", "cold sync"), ("noop", "no-op sync")):
        sides = [[med(t, phase, lambda r, side=side: sum(r[side].values())) for side in SIDES] for t in TOOLS]
        f, s = (sum(per_side) for per_side in sides)
        rows.append((f"{label}, HTTP requests (source + destination)",
                     *(" + ".join(f"{n:.0f}" for n in per_side) for per_side in sides), f"{f / s:.2f}"))
    print(f"\nsync benchmark: {len(meta['images'])} images in {len(repos)} repositories "
          f"({meta['unique_blob_bytes'] / MIB:.0f} MiB unique, largest layer "
          f"{meta['largest_blob_bytes'] / MIB:.0f} MiB), scale {args.scale}, median of {args.runs} runs, "
          f"ferry --proc {args.proc}{', over TLS' if args.tls else ''}")
    table(("", "ferry sync", "skopeo sync", "ferry/skopeo"), rows)

    if full:
        print("\nferry's requests with referrers off (as above) and on (its default), source + destination:")
        rows = []
        for phase, label in (("cold", "cold sync"), ("noop", "no-op sync")):
            off = [med("ferry", phase, lambda r, side=side: sum(r[side].values())) for side in SIDES]
            on = [sum(full[phase][side].values()) for side in SIDES]
            rows.append((f"{label}, HTTP requests", " + ".join(f"{n:.0f}" for n in off),
                         " + ".join(f"{n:.0f}" for n in on), f"{sum(on) / sum(off):.2f}"))
        for cls in CLASSES:
            off = [statistics.median(r[side][cls] for r in results["ferry"]["noop"]) for side in SIDES]
            on = [full["noop"][side][cls] for side in SIDES]
            if any(off) or any(on):
                rows.append((f"  no-op {cls}", " + ".join(f"{n:.0f}" for n in off), " + ".join(f"{n:.0f}" for n in on),
                             ""))
        rows.append(("wall time, no-op", fmt_s(med("ferry", "noop", lambda r: r["wall"])), fmt_s(full["noop"]["wall"]),
                     ""))
        table(("", "--referrers none", "--referrers all", "all/none"), rows)

    print("\nrequests per sync by route class, source + destination (median over runs):")
    rows = []
    for cls in CLASSES:
        cells = []
        for phase in ("cold", "noop"):
            for t in TOOLS:
                s = statistics.median(r["source"][cls] for r in results[t][phase])
                d = statistics.median(r["destination"][cls] for r in results[t][phase])
                cells.append(f"{s:.0f} + {d:.0f}" if s or d else "-")
        if any(c != "-" for c in cells):
            rows.append((cls, *cells))
    table(("", "ferry cold", "skopeo cold", "ferry no-op", "skopeo no-op"), rows)

    print("(per-run seconds: " + "; ".join(
        f"{t} {p} " + ",".join(f"{r['wall']:.3f}" for r in results[t][p]) for p in ("cold", "noop")
        for t in TOOLS) + ")")
    if big:
        print(f"(largest layer ×{args.largest_factor}: {big_meta['largest_blob_bytes'] / MIB:.0f} MiB; cold sync "
              + ", ".join(f"{t} {fmt_s(big[t]['wall'])}" for t in TOOLS) + ")")

    tags = len(meta["images"])
    # Each side: one tags/list per repository (the destination's tells a cold sync which tags
    # are missing) and one manifest HEAD per tag.
    least = Counter({"tags/list": len(repos), "manifest HEAD": tags})
    noop = results["ferry"]["noop"]
    minimal = all(r["source"] == least and r["destination"] == least for r in noop)
    rss = max(r["rss"] for p in ("cold", "noop") for r in results["ferry"][p])
    print("\ntargets (reported, not asserted):")
    print(f"  cold sync ≤ 0.50× skopeo's wall time: {ratios['cold']:.2f} "
          f"{'met' if ratios['cold'] <= 0.5 else 'MISSED'}")
    print(f"  no-op sync ≤ 0.30× skopeo's wall time: {ratios['noop']:.2f} "
          f"{'met' if ratios['noop'] <= 0.3 else 'MISSED'}")
    print(f"  no-op requests = {len(repos)} tags/list + {tags} manifest HEAD on each side: "
          f"{'met' if minimal else 'MISSED'}")
    print(f"  ferry peak RSS ≤ 20 MiB: {fmt_mib(rss)} {'met' if rss <= 20 * 1024 else 'MISSED'}")
    if big:
        grew = big["ferry"]["rss"] - max(r["rss"] for r in results["ferry"]["cold"])
        print(f"  no RSS growth with the largest layer ×{args.largest_factor}: {grew / 1024:+.1f} MiB")
    sys.stdout.flush()


def main() -> int:
    ap = argparse.ArgumentParser(description="ferry sync vs skopeo sync between two distribution registries")
    ap.add_argument("--scale", choices=["full", "small"], default="full")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--proc", type=int, default=5, help="ferry's --proc, images at once (default: ferry's own)")
    ap.add_argument("--largest-factor", type=int, default=4,
                    help="the memory check's largest layer, as a multiple of the corpus's (0: skip the check)")
    ap.add_argument("--ferry", type=Path, help="ferry binary to use (skips the build)")
    ap.add_argument("--no-build", action="store_true", help="use the already built release binary")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (storage, logs)")
    ap.add_argument("--tls", action="store_true", help="every registry serves HTTPS with a private CA")
    ap.add_argument("--fanout", type=int, default=3,
                    help="destinations of the fan-out comparison, one per run of each tool (0: skip it)")
    args = ap.parse_args()

    for tool in ("skopeo", "docker-registry", "/usr/bin/time"):
        if not shutil.which(tool):
            log(f"{tool} not found (apt-get install -y docker-registry skopeo time)")
            return 2
    isolated = private_mounts()
    corpus = make_corpus(args.scale)
    meta = json.loads((corpus / "corpus.json").read_text())
    images = meta["images"]
    repos = sorted({i["repo"] for i in images})
    if args.ferry:
        ferry_bin = args.ferry.resolve()
    elif args.no_build:
        ferry_bin = Path(os.environ.get("CARGO_TARGET_DIR", Path(__file__).resolve().parents[1] / "target"))
        ferry_bin = ferry_bin / "release" / "ferry"
    else:
        ferry_bin = build_ferry()
    log(f"corpus {corpus}: {len(images)} images in {len(repos)} repositories, "
        f"{meta['unique_blob_bytes'] / MIB:.1f} MiB unique, largest {meta['largest_blob_bytes'] / MIB:.1f} MiB; "
        f"{args.runs} runs; skopeo's blob-info cache: "
        + ("fresh per run" if isolated or os.geteuid() != 0 else "shared (/var/lib/containers/cache)"))

    workdir = Path(tempfile.mkdtemp(prefix="ferry-bench-sync-"))
    if args.tls:
        make_tls(workdir)
        log("TLS: every registry serves HTTPS with a private CA; both tools verify it")
    tools = {t: Tool(t, workdir, ferry_bin, args.proc) for t in TOOLS}
    results = {t: {"cold": [], "noop": []} for t in TOOLS}
    big, big_meta, full = {}, {}, {}
    fanout = {t: [] for t in TOOLS}
    failures = 0
    live = []
    try:
        source = seeded_source(workdir, corpus, images)
        live.append(source)
        for run in range(args.runs):
            order = TOOLS if run % 2 == 0 else TOOLS[::-1]
            log(f"run {run + 1}/{args.runs}: order {' then '.join(order)}")
            for name in order:
                tool = tools[name]
                tool.fresh_cache()
                destination = Registry(workdir)
                destination.start()
                live.append(destination)
                for phase in ("cold", "noop"):
                    r = sync_once(tool, repos, source, destination)
                    results[name][phase].append(r)
                    log(f"  {phase:<4} {name:<6} {fmt_s(r['wall']):>8}  {fmt_mib(r['rss']):>9}  "
                        f"{total(r)} requests")
                    if phase == "cold":
                        failures += check_mirror(destination, images, name)
                source.alive()
                destination.alive()
                destination.stop()
                live.remove(destination)
                if not args.keep:
                    shutil.rmtree(destination.dir)
        for run in range(args.runs if args.fanout > 0 else 0):
            order = TOOLS if run % 2 == 0 else TOOLS[::-1]
            log(f"fan-out run {run + 1}/{args.runs} into {args.fanout} destinations: order {' then '.join(order)}")
            for name in order:
                tools[name].fresh_cache()
                destinations = [Registry(workdir) for _ in range(args.fanout)]
                for d in destinations:
                    d.start()
                    live.append(d)
                r = fanout_once(tools[name], repos, source, destinations)
                fanout[name].append(r)
                log(f"  {name:<6} {fmt_s(r['wall']):>8}  {r['read'] / MIB:.1f} MiB read in {r['gets']} blob GETs")
                for d in destinations:
                    failures += check_mirror(d, images, f"{name} fan-out")
                    d.stop()
                    live.remove(d)
                    if not args.keep:
                        shutil.rmtree(d.dir)
        # ferry's default: referrers travel (none here to copy; this measures their cost).
        with_referrers = Tool("ferry", workdir, ferry_bin, args.proc, referrers="all")
        destination = Registry(workdir)
        destination.start()
        live.append(destination)
        for phase in ("cold", "noop"):
            full[phase] = sync_once(with_referrers, repos, source, destination)
            log(f"  {phase:<4} ferry --referrers all {fmt_s(full[phase]['wall']):>8}  {total(full[phase])} requests")
        failures += check_mirror(destination, images, "ferry --referrers all")
        destination.stop()
        live.remove(destination)
        if not args.keep:
            shutil.rmtree(destination.dir)
        if args.largest_factor > 1:
            source.stop()
            live.remove(source)
            big_corpus = make_corpus(args.scale, "--largest-factor", str(args.largest_factor))
            big_meta = json.loads((big_corpus / "corpus.json").read_text())
            log(f"memory check: largest layer {big_meta['largest_blob_bytes'] / MIB:.0f} MiB")
            source = seeded_source(workdir, big_corpus, big_meta["images"])
            live.append(source)
            for name in TOOLS:
                tools[name].fresh_cache()
                destination = Registry(workdir)
                destination.start()
                live.append(destination)
                big[name] = sync_once(tools[name], repos, source, destination)
                log(f"  cold {name:<6} {fmt_s(big[name]['wall']):>8}  {fmt_mib(big[name]['rss']):>9}")
                failures += check_mirror(destination, big_meta["images"], name)
                destination.stop()
                live.remove(destination)
    except (BenchError, subprocess.SubprocessError, OSError) as e:
        log(f"FAILED: {e}")
        return 1
    finally:
        for server in live:
            server.stop()
        release_skopeo_caches()
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    report(meta, args, results, big, big_meta, repos, full)
    if args.fanout > 0:
        report_fanout(meta, args, fanout, results)
    if failures:
        log(f"{failures} mirrored digests differ from the corpus")
        return 1
    log("digests: every mirrored tag of both tools matches the corpus")
    return 0


if __name__ == "__main__":
    sys.exit(main())
