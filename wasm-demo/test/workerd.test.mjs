// The edge handler's job routes in a real edge runtime: workerd (npm `workerd`, Cloudflare's open-source Workers
// runtime) with wasm-demo/workerd.capnp, and Node with serve.mjs, each against two real `ferry serve` registries.
// The same diff and the same streamed copy run in both; their final lines and the digests they leave are the same. A
// whole-registry diff streams one `repository_diffed` line per repository before its report, over the catalog or a
// typed list; the relay runs jobs only for the users of its RELAY_USERS, and their passwords appear in no log.
//
//   FERRY_BIN=target/debug/ferry node --test wasm-demo/test/workerd.test.mjs    (after `just wasm` and `npm ci`)

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import { start } from '../serve.mjs';
import { hashPassword } from '../users.mjs';

const root = fileURLToPath(new URL('../../', import.meta.url));
const ferryBin = process.env.FERRY_BIN ?? join(root, 'target/debug/ferry');
const workerdBin = join(root, 'node_modules/@cloudflare/workerd-linux-64/bin/workerd');
const required = ['1', 'true'].includes(process.env.FERRY_REQUIRE_PEERS ?? '') || Boolean(process.env.CI);

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const ACCEPT = `${OCI_MANIFEST}, ${OCI_INDEX}`;
const USER = 'page';
const PASSWORD = 'edge-Pa55-3c9f71';
const BASIC = `Basic ${btoa(`${USER}:${PASSWORD}`)}`;

/** What the handler writes under Node (it runs in this process) and workerd writes, for the password check. */
const logs = [];
for (const method of ['log', 'info', 'warn', 'error', 'debug']) {
  const original = console[method].bind(console);
  console[method] = (...args) => {
    logs.push(args.map(String).join(' '));
    original(...args);
  };
}

const missing = existsSync(workerdBin) ? null : `${workerdBin} is missing: npm ci installs workerd`;
if (missing && required) throw new Error(missing);

function serveRegistry() {
  const child = spawn(ferryBin, ['serve', '--storage', 'memory', '--addr', '127.0.0.1:0', '--log-level', 'warn'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    createInterface({ input: child.stdout }).once('line', (line) => {
      const url = line.match(/http:\/\/\S+/)?.[0];
      if (url) resolve({ child, url });
      else reject(new Error(`ferry serve printed ${JSON.stringify(line)}`));
    });
  });
}

const sha256 = (bytes) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
const descriptor = (mediaType, bytes) => ({ mediaType, digest: sha256(bytes), size: bytes.length });

async function pushBlob(base, repo, bytes) {
  const open = await fetch(`${base}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  const location = new URL(open.headers.get('location'), base);
  location.searchParams.set('digest', sha256(bytes));
  const put = await fetch(location, { method: 'PUT', body: bytes });
  assert.equal(put.status, 201);
}

async function pushManifest(base, repo, reference, mediaType, bytes) {
  const put = await fetch(`${base}/v2/${repo}/manifests/${reference}`, { method: 'PUT', body: bytes, headers: { 'content-type': mediaType } });
  assert.equal(put.status, 201);
  return sha256(bytes);
}

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
  return { digest: await pushManifest(base, repo, tag ?? sha256(manifest), OCI_MANIFEST, manifest), manifest };
}

async function headDigest(base, repo, reference) {
  const answer = await fetch(`${base}/v2/${repo}/manifests/${reference}`, { method: 'HEAD', headers: { accept: ACCEPT } });
  return answer.status === 200 ? answer.headers.get('docker-content-digest') : null;
}

async function freePort() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** workerd serving wasm-demo/workerd.capnp on a free port. */
async function startWorkerd(env) {
  const port = await freePort();
  const child = spawn(workerdBin, ['serve', join(root, 'wasm-demo/workerd.capnp'), '--experimental', '--socket-addr', `http=127.0.0.1:${port}`], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  for (const output of [child.stdout, child.stderr]) {
    output.on('data', (chunk) => {
      logs.push(chunk.toString());
      process.stderr.write(chunk);
    });
  }
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 200; i += 1) {
    if (child.exitCode !== null) throw new Error(`workerd exited with ${child.exitCode}`);
    try {
      await fetch(`${url}/nothing`);
      return { child, url };
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  throw new Error('workerd did not start listening');
}

async function post(base, body, authorization = BASIC) {
  const headers = { 'content-type': 'application/json' };
  if (authorization) headers.authorization = authorization;
  return fetch(`${base}/jobs`, { method: 'POST', headers, body: JSON.stringify(body) });
}

/** A job's lines, read as they stream; `reads` counts the chunks. */
async function lines(answer) {
  assert.equal(answer.status, 200, await answer.clone().text());
  assert.equal(answer.headers.get('content-type'), 'application/x-ndjson');
  let text = '';
  let reads = 0;
  const decoder = new TextDecoder();
  for await (const chunk of answer.body) {
    text += decoder.decode(chunk, { stream: true });
    reads += 1;
  }
  assert.ok(text.endsWith('\n'));
  return { events: text.trimEnd().split('\n').map((line) => JSON.parse(line)), reads };
}

/** The final line without what differs between two runs of the same job: times and ids. */
function comparable(line) {
  const copy = structuredClone(line);
  delete copy.job;
  if (copy.summary) delete copy.summary.elapsed_ms;
  return copy;
}

let source;
let destination;
let node;
let workerd;
let index;
let single;

before(async () => {
  if (missing) return;
  [source, destination] = await Promise.all([serveRegistry(), serveRegistry()]);
  const layer = randomBytes(64 * 1024);
  const children = [];
  for (const platform of ['linux/amd64', 'linux/arm64']) {
    const { manifest } = await pushImage(source.url, 'demo/app', null, platform, 32 * 1024);
    const [os, architecture] = platform.split('/');
    children.push({ ...descriptor(OCI_MANIFEST, manifest), platform: { architecture, os } });
  }
  const indexBytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: children }));
  index = { digest: await pushManifest(source.url, 'demo/app', 'v1', OCI_INDEX, indexBytes), children: children.map((c) => c.digest) };
  single = await pushImage(source.url, 'demo/app', 'single', 'linux/amd64', layer.length);
  await pushImage(source.url, 'demo/other', '1', 'linux/amd64', 1024);
  const allow = `${new URL(source.url).host} ${new URL(destination.url).host}`;
  // The relay's users: this test's, and another with a password nobody sends.
  const users = [await hashPassword(USER, PASSWORD), await hashPassword('ops', 'ops-Pa55-unused')].join('\n');
  node = await start({ port: 0, env: { RELAY_USERS: users, RELAY_ALLOW: allow } });
  workerd = await startWorkerd({ FERRY_RELAY_USERS: users, FERRY_RELAY_ALLOW: allow });
});

after(async () => {
  await new Promise((resolve) => (node ? node.server.close(resolve) : resolve()));
  for (const child of [source?.child, destination?.child, workerd?.child]) child?.kill();
});

test('the same diff and streamed copy under workerd and Node end with the same line and digests', { skip: missing ?? false }, async () => {
  const finals = {};
  for (const [runtime, base] of [
    ['node', node.url],
    ['workerd', workerd.url],
  ]) {
    const dst = `${destination.url}/${runtime}/app`;
    const before = await lines(await post(base, { kind: 'diff', source: `${source.url}/demo/app`, destination: dst }));
    assert.equal(before.events[0].event, 'job_started', runtime);
    const diffLast = before.events.at(-1);
    assert.deepEqual([diffLast.event, diffLast.status, diffLast.report.missing], ['diff_finished', 'different', 2], runtime);

    const images = ['v1', 'single'].map((tag) => ({ source: `${source.url}/demo/app:${tag}`, destination: `${dst}:${tag}` }));
    const copy = await lines(await post(base, { kind: 'copy', images }));
    const last = copy.events.at(-1);
    assert.deepEqual([last.event, last.status, last.summary.copied, last.summary.failed], ['job_finished', 'succeeded', 2, 0], runtime);
    assert.ok(copy.reads > 1, `${runtime}: the lines streamed, in ${copy.reads} reads`);
    assert.ok(copy.events.some((e) => e.event === 'blob_done'), runtime);

    const again = await lines(await post(base, { kind: 'diff', source: `${source.url}/demo/app`, destination: dst }));
    assert.equal(again.events.at(-1).status, 'in_sync', runtime);

    // Re-attach: the same lines from an offset.
    const id = copy.events[0].job;
    const replay = await lines(await fetch(`${base}/jobs/${id}/events?offset=2`, { headers: { authorization: BASIC } }));
    assert.deepEqual(replay.events, copy.events.slice(2), runtime);

    const digests = [];
    for (const reference of ['v1', 'single', ...index.children]) digests.push(await headDigest(destination.url, `${runtime}/app`, reference));
    assert.deepEqual(digests, [index.digest, single.digest, ...index.children], runtime);
    finals[runtime] = { copy: comparable(last), diff: comparable(again.events.at(-1)), digests };
  }
  assert.deepEqual(finals.workerd, finals.node);
  console.log(`final line in both runtimes: ${JSON.stringify(finals.node.copy)}`);
});

test('a whole-registry diff streams one repository_diffed line per repository, over the catalog or a typed list, in both runtimes', { skip: missing ?? false }, async () => {
  const finals = {};
  for (const [runtime, base] of [
    ['node', node.url],
    ['workerd', workerd.url],
  ]) {
    const wide = await lines(await post(base, { kind: 'diff', source: source.url, destination: `${destination.url}/wide` }));
    const last = wide.events.at(-1);
    assert.equal(last.event, 'diff_finished', runtime);
    const diffed = wide.events.filter((e) => e.event === 'repository_diffed');
    assert.deepEqual(diffed.map((e) => e.source_repository).sort(), ['demo/app', 'demo/other'], runtime);
    for (const line of diffed) {
      assert.equal(line.destination_repository, `wide/${line.source_repository}`, runtime);
      assert.deepEqual(line.rows, last.report.rows.filter((row) => row.repository === line.source_repository), runtime);
      assert.deepEqual(line.errors, [], runtime);
    }
    assert.ok(wide.events.indexOf(diffed.at(-1)) < wide.events.length - 1, `${runtime}: the lines come before the report`);

    const typed = await lines(await post(base, { kind: 'diff', source: source.url, destination: `${destination.url}/wide`, repositories: ['demo/other'] }));
    const typedLast = typed.events.at(-1);
    assert.deepEqual(typed.events.filter((e) => e.event === 'repository_diffed').map((e) => e.source_repository), ['demo/other'], runtime);
    assert.deepEqual(typedLast.report.rows.map((row) => `${row.repository}:${row.tag}:${row.status}`), ['demo/other:1:missing'], runtime);

    const bad = await post(base, { kind: 'diff', source: source.url, destination: destination.url, repositories: ['demo/app', 'Demo/App'] });
    assert.equal(bad.status, 400, runtime);
    assert.match((await bad.json()).error, /repositories\[1\] "Demo\/App"/, runtime);
    finals[runtime] = [comparable(last), comparable(typedLast)];
  }
  assert.deepEqual(finals.workerd, finals.node);
});

test('the edge relay runs jobs only for its users and reaches only its allowlist, in both runtimes', { skip: missing ?? false }, async () => {
  for (const base of [node.url, workerd.url]) {
    const diff = { kind: 'diff', source: `${source.url}/demo/app`, destination: `${destination.url}/x/app` };
    for (const authorization of [null, `Basic ${btoa(`${USER}:wrong`)}`, `Basic ${btoa(`nobody:${PASSWORD}`)}`, `Bearer ${PASSWORD}`]) {
      const refused = await post(base, diff, authorization);
      assert.equal(refused.status, 401, `${base} ${authorization}`);
      assert.match(refused.headers.get('www-authenticate'), /^Basic realm=/);
      const events = await fetch(`${base}/jobs/0123/events`, authorization ? { headers: { authorization } } : {});
      assert.equal(events.status, 401);
    }
    const admitted = await lines(await post(base, diff));
    assert.equal(admitted.events.at(-1).event, 'diff_finished');
    const unlisted = await post(base, { ...diff, source: `http://127.0.0.1:${await freePort()}/demo/app` });
    assert.equal(unlisted.status, 403);
    assert.match((await unlisted.json()).error, /not on the relay's allowlist/);
    const localhost = await post(base, { ...diff, source: `http://localhost:${new URL(source.url).port}/demo/app` });
    assert.equal(localhost.status, 403);
  }
  const text = logs.join('\n');
  assert.ok(!text.includes(PASSWORD), 'a relay password is in the logs');
  assert.ok(!text.includes(BASIC.slice(6)), "a relay user's Basic credentials are in the logs");
});
