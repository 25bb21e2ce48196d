#!/usr/bin/env python3
"""Benchmark `ferry serve` against distribution (docker-registry 2.8) with skopeo as the client.

What is measured, per server, in the same run:

* push: wall time of `skopeo copy --all --preserve-digests oci:LAYOUT:TAG
  docker://127.0.0.1:PORT/REPO:TAG` for every image of the synthetic corpus
  (bench/corpus.py), run sequentially (or with a fixed `--jobs` parallelism, the same
  for both servers), into fresh, empty registry storage;
* pull: wall time of `skopeo copy --all --preserve-digests docker://... oci:DIR:TAG`
  for every image, each into a fresh OCI layout directory;
* peak RSS of the server process itself (`VmHWM` from /proc/PID/status, read just
  before it is stopped; the server is started directly, never through a shell);
* HTTP requests each server logged per phase (ferry's request log at `info`,
  distribution's access log), a cheap check that both saw the same protocol work.

Each run (default 3) starts both servers fresh: a new temporary storage root and a new
free port, so neither skopeo's blob-info cache nor a warm registry cache carries over
from an earlier run. Within a run the phases alternate servers (push A, push B, pull A,
pull B), and the order A/B flips every run, so machine noise is shared. Times reported
are the median over runs; RSS is the maximum over runs. Ratios are ferry/distribution:
below 1.00 means ferry was faster.

Both servers run on 127.0.0.1 with their filesystem storage driver, no auth, no TLS.
distribution uses the minimal config from RECIPES.md plus the in-memory blob descriptor
cache its packaged default config enables, and its access log turned on (ferry logs
every request at its default `info` level, so both pay for a log line per request).

At the end every pulled image's top-level manifest digest is checked against the
corpus, for both servers. The script exits non-zero if a copy fails, a server does not
start or dies, or a digest differs; never because of a ratio (targets are reported, not
asserted).

Usage: bench/registry.py [--scale full|small] [--runs N] [--jobs N] [--ferry PATH] [--no-build]
"""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024


class BenchError(Exception):
    pass


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, name: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{name} exited with status {proc.returncode} before answering")
        try:
            with urllib.request.urlopen(url + "/v2/", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise BenchError(f"{name} did not answer {url}/v2/ within {timeout:.0f}s")


class Server:
    """One registry process: fresh storage root, free port, request log to a file."""

    name = ""
    log_name = ""

    def __init__(self, workdir: Path):
        self.dir = Path(tempfile.mkdtemp(prefix=f"{self.name}-", dir=workdir))
        self.root = self.dir / "storage"
        self.root.mkdir()
        self.log_path = self.dir / self.log_name
        self.proc = None
        self.port = None

    def command(self) -> list:
        raise NotImplementedError

    def start(self) -> None:
        self.port = free_port()
        cmd = self.command()
        self._out = open(self.dir / "stdout", "wb")
        self._err = open(self.dir / "stderr", "wb")
        # No shell: the Popen pid is the server process whose VmHWM we read.
        self.proc = subprocess.Popen(cmd, stdout=self._out, stderr=self._err,
                                     stdin=subprocess.DEVNULL)
        try:
            wait_ready(self.url, self.proc, self.name)
        except BenchError:
            self.stop()
            tail = (self.dir / "stderr").read_text(errors="replace")[-2000:]
            raise BenchError(f"{self.name} did not start: {' '.join(cmd)}\n{tail}")
        exe = os.path.basename(os.readlink(f"/proc/{self.proc.pid}/exe"))
        if exe != os.path.basename(cmd[0]):
            raise BenchError(f"pid {self.proc.pid} is {exe}, not {cmd[0]}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def alive(self) -> None:
        if self.proc.poll() is not None:
            raise BenchError(f"{self.name} died (status {self.proc.returncode}); logs in {self.dir}")

    def peak_rss_kib(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        raise BenchError(f"no VmHWM for {self.name}")

    def requests(self) -> int:
        raise NotImplementedError

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in (getattr(self, "_out", None), getattr(self, "_err", None)):
            if f:
                f.close()


class Ferry(Server):
    name = "ferry"
    log_name = "stderr"

    def __init__(self, workdir: Path, binary: Path):
        self.binary = binary
        super().__init__(workdir)

    def command(self) -> list:
        return [str(self.binary), "serve", "--storage", "filesystem", "--root", str(self.root),
                "--addr", self.host]

    def requests(self) -> int:
        with open(self.log_path, errors="replace") as f:
            return sum("finished processing request" in line for line in f)


class Distribution(Server):
    name = "distribution"
    log_name = "stdout"

    def command(self) -> list:
        config = self.dir / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log: {level: error, accesslog: {disabled: false}}\n"
            f"storage: {{filesystem: {{rootdirectory: {self.root}}}, delete: {{enabled: true}},"
            " cache: {blobdescriptor: inmemory}}\n"
            f"http: {{addr: {self.host}}}\n")
        return [shutil.which("docker-registry") or "/usr/bin/docker-registry", "serve", str(config)]

    def requests(self) -> int:
        # Combined log format: `127.0.0.1 - - [date] "METHOD /path HTTP/1.1" status size ...`
        with open(self.log_path, errors="replace") as f:
            return sum(1 for line in f if '"' in line and " HTTP/1.1\" " in line)


def skopeo(args: list) -> None:
    cmd = ["skopeo", "copy", "--quiet", "--all", "--preserve-digests"] + args
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=1800)
    if r.returncode != 0:
        raise BenchError(f"failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr.decode(errors='replace')}")


def run_phase(jobs: int, copies: list) -> float:
    """Run the skopeo copies (lists of args) with `jobs` parallelism; return wall seconds."""
    start = time.monotonic()
    if jobs <= 1:
        for c in copies:
            skopeo(c)
    else:
        with ThreadPoolExecutor(jobs) as pool:
            for f in [pool.submit(skopeo, c) for c in copies]:
                f.result()
    return time.monotonic() - start


def push_copies(corpus: Path, images: list, server: Server) -> list:
    return [["--dest-tls-verify=false", f"oci:{corpus / i['layout']}:{i['tag']}",
             f"docker://{server.host}/{i['repo']}:{i['tag']}"] for i in images]


def pull_dir(base: Path, image: dict) -> Path:
    return base / image["repo"].replace("/", "-") / image["tag"]


def pull_copies(pulled: Path, images: list, server: Server) -> list:
    for i in images:  # skopeo creates the layout dir, not its parents
        pull_dir(pulled, i).parent.mkdir(parents=True, exist_ok=True)
    return [["--src-tls-verify=false", f"docker://{server.host}/{i['repo']}:{i['tag']}",
             f"oci:{pull_dir(pulled, i)}:{i['tag']}"] for i in images]


def verify(pulled: Path, images: list, name: str) -> int:
    """Compare each pulled layout's top-level digest with the corpus; return mismatches."""
    bad = 0
    for i in images:
        index = json.loads((pull_dir(pulled, i) / "index.json").read_text())
        got = [m["digest"] for m in index["manifests"]
               if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == i["tag"]]
        if got != [i["digest"]]:
            log(f"DIGEST MISMATCH {name} {i['repo']}:{i['tag']}: got {got}, want {i['digest']}")
            bad += 1
    return bad


def build_ferry() -> Path:
    log("building ferry (cargo build --release -p ferry-cli)")
    subprocess.run(["cargo", "build", "--release", "-p", "ferry-cli"], cwd=ROOT, check=True)
    meta = subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps"], cwd=ROOT,
                          check=True, stdout=subprocess.PIPE)
    return Path(json.loads(meta.stdout)["target_directory"]) / "release" / "ferry"


def make_corpus(scale: str, *extra: str) -> Path:
    """The corpus directory for `scale` (generated or reused); `extra` are more corpus.py flags."""
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "corpus.py"), "--scale", scale, *extra],
                       check=True, stdout=subprocess.PIPE)
    return Path(r.stdout.decode().strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description="ferry serve vs distribution, pushed and pulled with skopeo")
    ap.add_argument("--scale", choices=["full", "small"], default="full")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=1, help="parallel skopeo copies per phase (same for both)")
    ap.add_argument("--ferry", type=Path, help="ferry binary to use (skips the build)")
    ap.add_argument("--no-build", action="store_true", help="use the already built release binary")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (storage, logs)")
    args = ap.parse_args()

    for tool in ("skopeo", "docker-registry"):
        if not shutil.which(tool):
            log(f"{tool} not found (apt-get install -y docker-registry skopeo)")
            return 2
    corpus = make_corpus(args.scale)
    meta = json.loads((corpus / "corpus.json").read_text())
    images = meta["images"]
    if args.ferry:
        ferry_bin = args.ferry.resolve()
    elif args.no_build:
        target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
        ferry_bin = target / "release" / "ferry"
    else:
        ferry_bin = build_ferry()
    log(f"corpus {corpus}: {len(images)} images, {meta['unique_blob_bytes'] / MIB:.1f} MiB of unique blobs, "
        f"largest {meta['largest_blob_bytes'] / MIB:.1f} MiB; {args.runs} runs, jobs={args.jobs}")

    workdir = Path(tempfile.mkdtemp(prefix="ferry-bench-"))
    names = ("ferry", "distribution")
    times = {n: {"push": [], "pull": []} for n in names}
    rss = {n: [] for n in names}
    reqs = {n: {"push": [], "pull": []} for n in names}
    failures = 0
    servers = []
    try:
        for run in range(args.runs):
            servers = [Ferry(workdir, ferry_bin), Distribution(workdir)]
            for s in servers:
                s.start()
            order = servers if run % 2 == 0 else servers[::-1]
            log(f"run {run + 1}/{args.runs}: order {' then '.join(s.name for s in order)}")
            before = {s.name: s.requests() for s in servers}
            for s in order:
                t = run_phase(args.jobs, push_copies(corpus, images, s))
                s.alive()
                times[s.name]["push"].append(t)
                log(f"  push {s.name:<12} {t:7.2f} s")
            time.sleep(0.3)  # let the last request log lines land
            after_push = {s.name: s.requests() for s in servers}
            pulled = {}
            for s in order:
                pulled[s.name] = Path(tempfile.mkdtemp(prefix=f"pull-{s.name}-", dir=workdir))
                t = run_phase(args.jobs, pull_copies(pulled[s.name], images, s))
                s.alive()
                times[s.name]["pull"].append(t)
                log(f"  pull {s.name:<12} {t:7.2f} s")
            for s in servers:
                rss[s.name].append(s.peak_rss_kib())
                s.stop()
                total = s.requests()
                reqs[s.name]["push"].append(after_push[s.name] - before[s.name])
                reqs[s.name]["pull"].append(total - after_push[s.name])
                failures += verify(pulled[s.name], images, s.name)
                if not args.keep:
                    shutil.rmtree(s.dir)
                    shutil.rmtree(pulled[s.name])
            servers = []
    except (BenchError, subprocess.SubprocessError, OSError) as e:
        log(f"FAILED: {e}")
        return 1
    finally:
        for s in servers:
            s.stop()
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    print_table(meta, args, times, rss, reqs)
    if failures:
        log(f"{failures} pulled digests differ from the corpus")
        return 1
    log(f"digests: all {len(images)} images pulled back from each server match the corpus")
    return 0


def print_table(meta, args, times, rss, reqs) -> None:
    med = {n: {p: statistics.median(v) for p, v in ph.items()} for n, ph in times.items()}
    rows = []
    for phase in ("push", "pull"):
        f, d = med["ferry"][phase], med["distribution"][phase]
        rows.append((phase, f"{f:.2f} s", f"{d:.2f} s", f"{f / d:.2f}"))
    f = med["ferry"]["push"] + med["ferry"]["pull"]
    d = med["distribution"]["push"] + med["distribution"]["pull"]
    rows.append(("push + pull", f"{f:.2f} s", f"{d:.2f} s", f"{f / d:.2f}"))
    fr, dr = max(rss["ferry"]) / 1024, max(rss["distribution"]) / 1024
    rows.append(("peak RSS", f"{fr:.1f} MiB", f"{dr:.1f} MiB", f"{fr / dr:.2f}"))
    for phase in ("push", "pull"):
        fq, dq = max(reqs["ferry"][phase]), max(reqs["distribution"][phase])
        rows.append((f"HTTP requests, {phase}", str(fq), str(dq), f"{fq / dq:.2f}" if dq else "-"))
    header = ("", "ferry serve", "distribution 2.8", "ferry/distribution")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(4)]
    print(f"\nregistry benchmark: {len(meta['images'])} images ({meta['unique_blob_bytes'] / MIB:.0f} MiB unique, "
          f"largest layer {meta['largest_blob_bytes'] / MIB:.0f} MiB), scale {args.scale}, "
          f"median of {args.runs} runs, skopeo jobs={args.jobs}")
    line = lambda r: "| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                         for i, (c, w) in enumerate(zip(r, widths))) + " |"
    print(line(header))
    print("|" + "|".join("-" * (w + 1) + ":" if i else "-" * (w + 2) for i, w in enumerate(widths)) + "|")
    for r in rows:
        print(line(r))
    print(f"(per-run seconds: " + "; ".join(
        f"{n} {p} " + ",".join(f"{t:.2f}" for t in times[n][p]) for p in ("push", "pull") for n in times)
        + ")")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
