#!/usr/bin/env python3
"""Generate ferry's synthetic benchmark corpus: OCI image layouts on disk.

What it builds (deterministic for a given seed and scale):

* REPOS repositories (default 12), each an OCI image layout directory
  (`<corpus>/layouts/<repo-with-slashes-as-dashes>/`) holding TAGS refs (default 3),
  so `skopeo copy oci:<layout>:<tag> docker://HOST/<repo>:<tag>` copies one image.
* Every image is `base` + a repository layer (shared by the repository's tags) + a tag
  layer. The base layer is shared by every repository, like a distro base image.
* Layer sizes are drawn log-uniformly from a few KiB up to a fraction of MAX; one
  repository (`ml/model`) carries a layer of exactly MAX bytes (default 100 MiB at
  `--scale full`, 4 MiB at `--scale small`). `--largest-factor N` makes that one layer
  N times bigger and leaves every other blob as it is, to show how memory follows the
  largest layer.
* One repository (`tools/multiarch`) is multi-arch: tag `1.0` is an OCI image index
  for linux/amd64 and linux/arm64; tags `1.0-amd64` and `1.0-arm64` name its children.

Layers are real tar archives (one regular file of pseudo-random, incompressible bytes)
compressed with gzip, so their sizes are what goes over the wire. Configs are valid OCI
image configs whose `rootfs.diff_ids` are the sha256 of the uncompressed tars; manifests
and the index are valid OCI documents. Blobs are written once into `<corpus>/blobs/` and
hard-linked into each layout that uses them.

The corpus is cached in `<repo>/target/bench-corpus-<scale>/`: a `params.sha256` stamp
holds the hash of every generation parameter, and a rerun with the same parameters
reuses the directory. `corpus.json` lists every image (repo, tag, layout, digest,
media type) for the benchmark drivers.

Usage: bench/corpus.py [--scale full|small] [--max-mib N] [--largest-factor N] [--seed N] [--out DIR]
Prints the corpus directory on the last line of stdout.
"""

import argparse
import hashlib
import io
import json
import math
import os
import random
import shutil
import sys
import tarfile
import zlib
from pathlib import Path

GENERATOR_VERSION = 1  # bump when the output format changes, to invalidate caches
KIB = 1024
MIB = 1024 * KIB
SCALES = {"full": 100, "small": 4}  # size of the largest layer, MiB

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"
CREATED = "2024-01-01T00:00:00Z"

REPO_NAMES = [
    "library/alpine-like", "library/debian-like", "team/api", "team/web", "team/worker",
    "team/cron", "data/etl", "data/notebook", "ml/model", "infra/proxy", "infra/agent",
    "tools/multiarch",
]


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


class Corpus:
    def __init__(self, root: Path, rng: random.Random):
        self.root = root
        self.rng = rng
        self.blobs = root / "blobs"
        self.blobs.mkdir(parents=True)
        self.sizes = {}  # digest -> size

    def put(self, data: bytes) -> dict:
        digest = sha256(data)
        path = self.blobs / digest.split(":")[1]
        if not path.exists():
            path.write_bytes(data)
        self.sizes[digest] = len(data)
        return {"digest": digest, "size": len(data)}

    def layer(self, name: str, size: int, extra: int = 0) -> dict:
        """A gzip'd tar of one file of `size` + `extra` pseudo-random bytes; returns descriptor +
        diff_id. The `extra` bytes come from their own generator, so the shared one (and with
        it every other blob) is the same whatever `extra` is."""
        payload = self.rng.randbytes(size)
        if extra:
            more = random.Random(f"{name}-extra")  # randbytes takes at most 2**28 bytes at once
            payload += b"".join(more.randbytes(min(64 * MIB, extra - at)) for at in range(0, extra, 64 * MIB))
        info = tarfile.TarInfo(name=f"{name}/data.bin")
        info.size, info.mtime, info.mode, info.uid, info.gid = len(payload), 0, 0o644, 0, 0
        info.uname = info.gname = "root"
        tar = io.BytesIO()
        with tarfile.open(fileobj=tar, mode="w", format=tarfile.PAX_FORMAT) as t:
            t.addfile(info, io.BytesIO(payload))
        tar_bytes = tar.getvalue()
        # wbits=31: gzip container with mtime 0 and no file name, so output is reproducible.
        z = zlib.compressobj(1, zlib.DEFLATED, 31)
        gz = z.compress(tar_bytes) + z.flush()
        desc = self.put(gz)
        return {"mediaType": MT_LAYER, **desc, "diff_id": sha256(tar_bytes)}

    def image(self, layers: list, arch: str, label: str) -> dict:
        config = {
            "created": CREATED,
            "architecture": arch,
            "os": "linux",
            "config": {"Env": ["PATH=/usr/local/bin:/usr/bin:/bin"], "Cmd": ["/bin/sh"],
                       "Labels": {"bench.ferry.image": label}},
            "rootfs": {"type": "layers", "diff_ids": [l["diff_id"] for l in layers]},
            "history": [{"created": CREATED, "created_by": f"bench layer {i}"}
                        for i in range(len(layers))],
        }
        cfg = {"mediaType": MT_CONFIG, **self.put(canonical(config))}
        manifest = {
            "schemaVersion": 2,
            "mediaType": MT_MANIFEST,
            "config": cfg,
            "layers": [{k: l[k] for k in ("mediaType", "digest", "size")} for l in layers],
        }
        blobs = [cfg["digest"]] + [l["digest"] for l in layers]
        return {"mediaType": MT_MANIFEST, **self.put(canonical(manifest)), "blobs": blobs}

    def index(self, children: dict) -> dict:
        index = {
            "schemaVersion": 2,
            "mediaType": MT_INDEX,
            "manifests": [{"mediaType": MT_MANIFEST, "digest": c["digest"], "size": c["size"],
                           "platform": {"architecture": arch, "os": "linux"}}
                          for arch, c in children.items()],
        }
        blobs = [c["digest"] for c in children.values()]
        blobs += [b for c in children.values() for b in c["blobs"]]
        return {"mediaType": MT_INDEX, **self.put(canonical(index)), "blobs": blobs}

    def layout(self, repo: str, tags: dict) -> Path:
        """Write one OCI layout with `tags` (tag -> top-level descriptor), blobs hard-linked."""
        path = self.root / "layouts" / repo.replace("/", "-")
        (path / "blobs" / "sha256").mkdir(parents=True)
        (path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
        needed = set()
        for desc in tags.values():
            needed.add(desc["digest"])
            needed.update(desc["blobs"])
        for digest in sorted(needed):
            hexd = digest.split(":")[1]
            os.link(self.blobs / hexd, path / "blobs" / "sha256" / hexd)
        index = {
            "schemaVersion": 2,
            "mediaType": MT_INDEX,
            "manifests": [{"mediaType": d["mediaType"], "digest": d["digest"], "size": d["size"],
                           "annotations": {REF_NAME: tag}} for tag, d in tags.items()],
        }
        (path / "index.json").write_bytes(canonical(index))
        return path


def log_uniform(rng: random.Random, lo: int, hi: int) -> int:
    return int(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def generate(root: Path, params: dict) -> list:
    rng = random.Random(params["seed"])
    c = Corpus(root, rng)
    max_bytes = params["max_mib"] * MIB
    lo = 4 * KIB
    base = c.layer("base", max(lo, max_bytes // 8))
    images = []
    for repo in REPO_NAMES[: params["repos"]]:
        if repo == "tools/multiarch":
            children = {}
            for arch in ("amd64", "arm64"):
                plat = c.layer(f"{arch}", log_uniform(rng, lo, max(lo + 1, max_bytes // 4)))
                children[arch] = c.image([base, plat], arch, f"{repo}:1.0-{arch}")
            tags = {"1.0": c.index(children),
                    "1.0-amd64": children["amd64"], "1.0-arm64": children["arm64"]}
        else:
            if repo == "ml/model":
                repo_layer = c.layer(repo, max_bytes, extra=max_bytes * (params.get("largest_factor", 1) - 1))
            else:
                repo_layer = c.layer(repo, log_uniform(rng, 16 * KIB, max_bytes // 3))
            tags = {}
            for i in range(params["tags"]):
                tag = f"v{i + 1}"
                own = c.layer(f"{repo}-{tag}", log_uniform(rng, lo, max(lo + 1, max_bytes // 12)))
                tags[tag] = c.image([base, repo_layer, own], "amd64", f"{repo}:{tag}")
        path = c.layout(repo, tags)
        for tag, d in tags.items():
            images.append({"repo": repo, "tag": tag, "layout": str(path.relative_to(root)),
                           "digest": d["digest"], "mediaType": d["mediaType"]})
    return images, c.sizes


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", choices=SCALES, default="full")
    ap.add_argument("--max-mib", type=int, help="size of the largest layer in MiB (default: per scale)")
    ap.add_argument("--largest-factor", type=int, default=1,
                    help="make the largest layer N times bigger, every other blob unchanged")
    ap.add_argument("--repos", type=int, default=len(REPO_NAMES))
    ap.add_argument("--tags", type=int, default=3)
    ap.add_argument("--seed", type=int, default=20240101)
    ap.add_argument("--out", type=Path, help="corpus directory (default target/bench-corpus-SCALE)")
    args = ap.parse_args()

    params = {"version": GENERATOR_VERSION, "seed": args.seed, "repos": args.repos, "tags": args.tags,
              "max_mib": args.max_mib or SCALES[args.scale]}
    if args.largest_factor != 1:  # absent at 1, so the default corpus keeps its cache key
        params["largest_factor"] = args.largest_factor
    key = hashlib.sha256(canonical(params)).hexdigest()
    suffix = f"-largest{args.largest_factor}x" if args.largest_factor != 1 else ""
    out = args.out or Path(__file__).resolve().parent.parent / "target" / f"bench-corpus-{args.scale}{suffix}"
    stamp = out / "params.sha256"
    if stamp.exists() and stamp.read_text().strip() == key and (out / "corpus.json").exists():
        print(f"corpus: reusing {out} (params {key[:12]})", file=sys.stderr)
        print(out)
        return 0

    if out.exists():
        shutil.rmtree(out)
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    print(f"corpus: generating {out} with {params}", file=sys.stderr)
    images, sizes = generate(tmp, params)
    total = sum(sizes.values())
    (tmp / "corpus.json").write_text(json.dumps(
        {"params": params, "key": key, "images": images, "unique_blob_bytes": total,
         "largest_blob_bytes": max(sizes.values())}, indent=2))
    (tmp / "params.sha256").write_text(key + "\n")
    tmp.rename(out)
    print(f"corpus: {len(images)} images, {len(sizes)} blobs, {total / MIB:.1f} MiB unique, "
          f"largest blob {max(sizes.values()) / MIB:.1f} MiB", file=sys.stderr)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
