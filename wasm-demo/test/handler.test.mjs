// The edge handler end to end: two real `ferry serve --storage memory` registries, the
// handler hosted by serve.mjs, and plain HTTP in between. Node built-ins only.
//
//   FERRY_BIN=target/debug/ferry node --test wasm-demo/test/    (after `just wasm`)

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import { start } from '../serve.mjs';

const root = fileURLToPath(new URL('../../', import.meta.url));
const ferryBin = process.env.FERRY_BIN ?? join(root, 'target/debug/ferry');

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const ACCEPT = `${OCI_MANIFEST}, ${OCI_INDEX}`;

/** Starts `ferry serve` on a free port; resolves with the process and its URL. */
function serveRegistry() {
  const child = spawn(ferryBin, ['serve', '--storage', 'memory', '--addr', '127.0.0.1:0', '--log-level', 'warn'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    child.once('error', (error) =>
      reject(new Error(`cannot run ${ferryBin} (${error.message}): build it with cargo build -p ferry-cli, or set FERRY_BIN`)),
    );
    createInterface({ input: child.stdout }).once('line', (line) => {
      const url = line.match(/http:\/\/\S+/)?.[0];
      if (url) resolve({ child, url });
      else reject(new Error(`ferry serve printed ${JSON.stringify(line)}`));
    });
  });
}

const sha256 = (bytes) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

async function pushBlob(base, repo, bytes) {
  const open = await fetch(`${base}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  assert.equal(open.status, 202, `opening an upload in ${repo}`);
  const location = new URL(open.headers.get('location'), base);
  location.searchParams.set('digest', sha256(bytes));
  const put = await fetch(location, { method: 'PUT', body: bytes, headers: { 'content-type': 'application/octet-stream' } });
  assert.equal(put.status, 201, `uploading a blob to ${repo}`);
}

async function pushManifest(base, repo, reference, mediaType, bytes) {
  const put = await fetch(`${base}/v2/${repo}/manifests/${reference}`, {
    method: 'PUT',
    body: bytes,
    headers: { 'content-type': mediaType },
  });
  assert.equal(put.status, 201, `pushing ${repo}:${reference}`);
  return sha256(bytes);
}

const descriptor = (mediaType, bytes) => ({ mediaType, digest: sha256(bytes), size: bytes.length });

/** An OCI image for `platform` with one layer of `size` random bytes. */
async function pushImage(base, repo, tag, platform, size) {
  const [os, architecture] = platform.split('/');
  const config = Buffer.from(JSON.stringify({ architecture, os, rootfs: { type: 'layers', diff_ids: [] } }));
  const layer = randomBytes(size);
  await pushBlob(base, repo, config);
  await pushBlob(base, repo, layer);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: descriptor('application/vnd.oci.image.config.v1+json', config),
      layers: [descriptor('application/vnd.oci.image.layer.v1.tar+gzip', layer)],
    }),
  );
  const digest = await pushManifest(base, repo, tag ?? sha256(manifest), OCI_MANIFEST, manifest);
  return { digest, manifest };
}

async function pushIndex(base, repo, tag, platforms) {
  const children = [];
  for (const platform of platforms) {
    const { manifest } = await pushImage(base, repo, null, platform, 64 * 1024);
    const [os, architecture] = platform.split('/');
    children.push({ ...descriptor(OCI_MANIFEST, manifest), platform: { architecture, os } });
  }
  const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: children }));
  const digest = await pushManifest(base, repo, tag, OCI_INDEX, index);
  return { digest, children: children.map((c) => c.digest) };
}

async function headDigest(base, repo, reference) {
  const answer = await fetch(`${base}/v2/${repo}/manifests/${reference}`, { method: 'HEAD', headers: { accept: ACCEPT } });
  return answer.status === 200 ? answer.headers.get('docker-content-digest') : null;
}

/** A loopback port nothing listens on. */
async function closedPort() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

let source;
let destination;
let demo;
let index;
let single;

before(async () => {
  [source, destination] = await Promise.all([serveRegistry(), serveRegistry()]);
  index = await pushIndex(source.url, 'demo/app', 'v1', ['linux/amd64', 'linux/arm64']);
  single = await pushImage(source.url, 'demo/app', 'single', 'linux/amd64', 200 * 1024);
  demo = await start({ port: 0 });
});

after(async () => {
  await new Promise((resolve) => demo?.server.close(resolve));
  for (const registry of [source, destination]) registry?.child.kill();
});

const src = () => `${source.url}/demo/app`;
const dst = () => `${destination.url}/mirror/app`;
const diffUrl = (from, to) => `${demo.url}/diff?src=${encodeURIComponent(from)}&dst=${encodeURIComponent(to)}`;

test('GET /diff answers the core report as JSON', async () => {
  const answer = await fetch(diffUrl(src(), dst()));
  assert.equal(answer.status, 200);
  assert.match(answer.headers.get('content-type'), /^application\/json/);
  const report = await answer.json();
  assert.deepEqual(
    report.rows.map((row) => [row.tag, row.status, row.source_digest]),
    [
      ['single', 'missing', single.digest],
      ['v1', 'missing', index.digest],
    ],
  );
  assert.deepEqual([report.in_sync, report.missing, report.errors], [0, 2, []]);
});

test('POST /sync streams the progress as NDJSON and copies every digest', async () => {
  const answer = await fetch(`${demo.url}/sync`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ src: src(), dst: dst() }),
  });
  assert.equal(answer.status, 200);
  assert.equal(answer.headers.get('content-type'), 'application/x-ndjson');

  let text = '';
  let reads = 0;
  const decoder = new TextDecoder();
  for await (const chunk of answer.body) {
    text += decoder.decode(chunk, { stream: true });
    reads += 1;
  }
  assert.ok(text.endsWith('\n'), 'every line ends with a newline');
  const events = text.trimEnd().split('\n').map((line) => JSON.parse(line));
  assert.ok(reads > 1, `the events arrived as they happened, in ${reads} reads`);
  assert.equal(events[0].event, 'plan_ready');
  const last = events.at(-1);
  assert.deepEqual([last.event, last.status, last.summary.copied, last.summary.failed], ['job_finished', 'succeeded', 2, 0]);
  assert.equal(events.filter((e) => e.event === 'job_finished').length, 1);

  for (const [reference, digest] of [['v1', index.digest], ['single', single.digest], ...index.children.map((c) => [c, c])]) {
    assert.equal(await headDigest(destination.url, 'mirror/app', reference), digest, `${reference} at the destination`);
  }
  const after = await (await fetch(diffUrl(src(), dst()))).json();
  assert.deepEqual([after.in_sync, after.missing, after.different, after.extra], [2, 0, 0, 0]);
});

test('a tag that does not exist fails its image with the kind not_found in the stream', async () => {
  const answer = await fetch(`${demo.url}/sync`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ src: src(), dst: dst(), tags: ['nope'] }),
  });
  const events = (await answer.text()).trimEnd().split('\n').map((line) => JSON.parse(line));
  const failed = events.find((e) => e.event === 'image_failed');
  assert.deepEqual([failed.kind, failed.retryable], ['not_found', false]);
  assert.match(failed.reason, /does not exist at the source/);
  assert.doesNotMatch(failed.reason, /ferry ls/, 'CLI hints stay in the CLI');
  const last = events.at(-1);
  assert.deepEqual([last.event, last.status, last.summary.failures[0].kind], ['job_finished', 'failed', 'not_found']);
});

test('bad input gets 400 with a JSON error', async () => {
  const post = (body) => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body });
  const cases = [
    ['no src', `${demo.url}/diff?dst=${encodeURIComponent(dst())}`, {}, /src is missing/],
    ['not a URL', diffUrl('registry/app', dst()), {}, /not a URL/],
    ['no repository', diffUrl(source.url, dst()), {}, /http\(s\):\/\/host\[:port\]\/repository/],
    ['bad repository', diffUrl(`${source.url}/Demo`, dst()), {}, /repository/],
    ['not JSON', `${demo.url}/sync`, post('{src:'), /must be JSON/],
    ['not an object', `${demo.url}/sync`, post('[1]'), /JSON object/],
    ['unknown field', `${demo.url}/sync`, post(JSON.stringify({ src: src(), dst: dst(), tag: ['v1'] })), /unknown field "tag"/],
    ['bad tag', `${demo.url}/sync`, post(JSON.stringify({ src: src(), dst: dst(), tags: ['no spaces'] })), /tags/],
    ['bad platform', `${demo.url}/sync`, post(JSON.stringify({ src: src(), dst: dst(), platforms: ['linux'] })), /platforms/],
  ];
  for (const [what, url, init, message] of cases) {
    const answer = await fetch(url, init);
    assert.equal(answer.status, 400, what);
    const body = await answer.json();
    assert.match(body.error, message, what);
    assert.ok(!body.error.includes('\n'), `${what}: one line`);
  }
  assert.equal((await fetch(`${demo.url}/sync`)).status, 405);
  assert.equal((await fetch(`${demo.url}/nowhere`)).status, 404);
});

test('a registry that cannot be reached is a 502 naming it', async () => {
  const down = `http://127.0.0.1:${await closedPort()}`;
  const answer = await fetch(diffUrl(src(), `${down}/mirror/app`));
  assert.equal(answer.status, 502);
  const body = await answer.json();
  assert.equal(body.registry, down);
  assert.match(body.error, /could not reach/);
});
