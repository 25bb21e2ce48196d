// Registries for the page's end-to-end tests: `ferry serve` and distribution
// (`docker-registry`) processes on loopback, sample images pushed over plain HTTP, and
// digests read back. The tests in web/test/ import this; it holds no test of its own.

import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
export const FERRY_BIN = process.env.FERRY_BIN || join(ROOT, 'target/debug/ferry');

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';
const ACCEPT = [OCI_INDEX, OCI_MANIFEST, 'application/vnd.docker.distribution.manifest.v2+json', 'application/vnd.docker.distribution.manifest.list.v2+json'].join(', ');

/** A port that was free a moment ago. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

const PACKAGES = { htpasswd: 'apache2-utils' };

/** Whether a missing peer fails the test instead of skipping it (scripts/test-all.sh sets FERRY_REQUIRE_PEERS=1). */
const PEERS_REQUIRED = ['FERRY_REQUIRE_PEERS', 'CI'].some((name) => (process.env[name] ?? '') !== '' && process.env[name] !== '0');

/** Whether a command is on PATH. When peers are required, a missing one fails instead. */
export function have(tool) {
  const found = spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
  if (!found && PEERS_REQUIRED) {
    throw new Error(`${tool} is required (FERRY_REQUIRE_PEERS or CI is set): apt-get install -y ${PACKAGES[tool] ?? tool}, or run scripts/test-all.sh`);
  }
  return found;
}

/** Whether `python3` imports `module` (installed with pip as `pkg`). When peers are required, a missing one fails instead. */
export function havePythonModule(module, pkg = module) {
  const found = spawnSync('python3', ['-c', `import ${module}`]).status === 0;
  if (!found && PEERS_REQUIRED) {
    throw new Error(`python3 cannot import ${module} (FERRY_REQUIRE_PEERS or CI is set): python3 -m pip install ${pkg}, or run scripts/test-all.sh`);
  }
  return found;
}

// oras-py pushes a file as an artifact whose `subject` is the descriptor given; the
// referrers list gives its config's media type as its `artifactType`.
const ORAS_PUSH = `
import json, os, sys
import oras.client, oras.oci
host, repo, tag, path, config_type, subject = sys.argv[1:7]
subject = json.loads(subject)
config = os.path.join(os.path.dirname(path), "config.json")
with open(config, "w") as f:
    f.write("{}")
client = oras.client.OrasClient(hostname=host, insecure=True)
response = client.push(
    target=f"{host}/{repo}:{tag}",
    files=[f"{path}:application/octet-stream"],
    manifest_config=f"{config}:{config_type}",
    subject=oras.oci.Subject(mediaType=subject["mediaType"], digest=subject["digest"], size=subject["size"]),
    disable_path_validation=True,
    quiet=True,
)
assert response.status_code == 201, response.text
`;

/**
 * Pushes `payload` with oras-py to `base`'s `repository:tag` as an artifact of
 * `configType` referring to `subject` (`{digest, manifest}` as pushImage returns).
 * Returns the artifact manifest's digest.
 */
export async function orasPush(base, repository, tag, payload, configType, subject) {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-web-oras-'));
  try {
    const path = join(dir, tag);
    writeFileSync(path, payload);
    const descriptor = { mediaType: OCI_MANIFEST, digest: subject.digest, size: subject.manifest.length };
    const host = new URL(base).host;
    const out = spawnSync('python3', ['-c', ORAS_PUSH, host, repository, tag, path, configType, JSON.stringify(descriptor)], { cwd: dir });
    if (out.status !== 0) throw new Error(`oras push ${repository}:${tag}: ${out.stderr}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return headDigest(base, repository, tag);
}

/**
 * `ferry serve --addr ADDR --log-level warn ARGS`; resolves once it printed its URL.
 * `stop()` ends it (SIGTERM) and waits.
 */
export async function startFerry(args, { addr = '127.0.0.1:0' } = {}) {
  const child = spawn(FERRY_BIN, ['serve', '--addr', addr, '--log-level', 'warn', ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const url = await new Promise((resolve, reject) => {
    child.once('error', (e) => reject(new Error(`cannot run ${FERRY_BIN} (build it with cargo build, or set FERRY_BIN): ${e.message}`)));
    exited.then((code) => reject(new Error(`ferry serve ${args.join(' ')} exited with ${code} before listening`)));
    createInterface({ input: child.stdout }).once('line', (line) => resolve(line.trim().split(' ').pop()));
  });
  return {
    url,
    async stop() {
      if (child.exitCode == null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/**
 * distribution 2.8 on a free port. `http`: more YAML under `http:` (indented, e.g.
 * `  headers: ...`); `config`: more top-level YAML (e.g. `auth: ...`).
 */
export async function startDistribution({ http = '', config: more = '' } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-web-distribution-'));
  for (let attempt = 0; attempt < 5; attempt += 1) {
    const port = await freePort();
    const config = join(dir, 'config.yml');
    writeFileSync(
      config,
      [
        'version: 0.1',
        'log: {level: error, accesslog: {disabled: true}}',
        `storage: {filesystem: {rootdirectory: ${join(dir, 'data')}}, delete: {enabled: true}}`,
        'http:',
        `  addr: 127.0.0.1:${port}`,
        http,
        more,
      ].join('\n'),
    );
    const child = spawn('docker-registry', ['serve', config], { stdio: 'ignore' });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    const url = `http://127.0.0.1:${port}`;
    if (await waitUp(url, exited)) {
      return {
        url,
        async stop() {
          if (child.exitCode == null) child.kill('SIGTERM');
          await exited;
          rmSync(dir, { recursive: true, force: true });
        },
      };
    }
  }
  throw new Error('docker-registry did not start');
}

async function waitUp(url, exited) {
  let gone = false;
  exited.then(() => {
    gone = true;
  });
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline && !gone) {
    try {
      await fetch(`${url}/v2/`);
      return true;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return false;
}

// ------------------------------------------------------------------ images

/** `n` deterministic bytes for `seed` (SHA-256 in counter mode). */
export function bytes(seed, n) {
  const out = Buffer.alloc(n);
  for (let offset = 0, i = 0; offset < n; i += 1) {
    offset += createHash('sha256').update(`${seed}/${i}`).digest().copy(out, offset);
  }
  return out;
}

export function sha256(data) {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

async function check(response, want, what) {
  if (response.status !== want) throw new Error(`${what}: HTTP ${response.status} ${await response.text()}`);
  return response;
}

export async function pushBlob(base, repository, data) {
  const open = await check(await fetch(`${base}/v2/${repository}/blobs/uploads/`, { method: 'POST' }), 202, `POST upload ${repository}`);
  const location = new URL(open.headers.get('location'), base);
  location.searchParams.set('digest', sha256(data));
  await check(
    await fetch(location, { method: 'PUT', body: data, headers: { 'Content-Type': 'application/octet-stream' } }),
    201,
    `PUT blob ${repository}`,
  );
  return sha256(data);
}

export async function putManifest(base, repository, reference, mediaType, body) {
  await check(
    await fetch(`${base}/v2/${repository}/manifests/${reference}`, { method: 'PUT', body, headers: { 'Content-Type': mediaType } }),
    201,
    `PUT manifest ${repository}:${reference}`,
  );
  return sha256(body);
}

const descriptor = (mediaType, data) => ({ mediaType, digest: sha256(data), size: data.length });

/**
 * An OCI image of `layers` for `platform`, pushed under each of `tags` (or by digest when
 * `tags` is empty). Returns `{digest, manifest, blobs}`.
 */
export async function pushImage(base, repository, { tags, layers, platform = 'linux/amd64' }) {
  const [os, architecture] = platform.split('/');
  const config = Buffer.from(JSON.stringify({ architecture, os, rootfs: { type: 'layers', diff_ids: [] } }));
  for (const blob of [config, ...layers]) await pushBlob(base, repository, blob);
  const manifest = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: descriptor(OCI_CONFIG, config), layers: layers.map((l) => descriptor(OCI_LAYER, l)) }),
  );
  const digest = sha256(manifest);
  for (const reference of tags.length ? tags : [digest]) await putManifest(base, repository, reference, OCI_MANIFEST, manifest);
  return { digest, manifest, blobs: [config, ...layers].map(sha256) };
}

/** An OCI index with one image per platform, each on `shared` plus a layer of its own. */
export async function pushIndex(base, repository, { tag, platforms, shared, ownSize }) {
  const children = [];
  for (const platform of platforms) {
    const image = await pushImage(base, repository, { tags: [], layers: [...shared, bytes(`own ${platform}`, ownSize)], platform });
    const [os, architecture] = platform.split('/');
    children.push({ ...descriptor(OCI_MANIFEST, image.manifest), platform: { architecture, os }, blobs: image.blobs });
  }
  const index = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: children.map(({ blobs, ...entry }) => entry) }),
  );
  const digest = await putManifest(base, repository, tag, OCI_INDEX, index);
  return { digest, children };
}

/** `Docker-Content-Digest` of a manifest HEAD, or null on 404. */
export async function headDigest(base, repository, reference) {
  const r = await fetch(`${base}/v2/${repository}/manifests/${reference}`, { method: 'HEAD', headers: { Accept: ACCEPT } });
  if (r.status === 404) return null;
  await check(r, 200, `HEAD ${repository}:${reference}`);
  return r.headers.get('docker-content-digest');
}

export async function hasBlob(base, repository, digest) {
  const r = await fetch(`${base}/v2/${repository}/blobs/${digest}`, { method: 'HEAD' });
  return r.status === 200;
}
