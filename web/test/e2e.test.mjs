// The page end to end, in the system Chromium: two `ferry serve` registries (one also
// serving the page), sample images, the diff table, "Copy all missing", and the
// destination checked over HTTP afterwards. Then registries a browser cannot use, and
// the CORS diagnosis that names them and shows the fix, and that fix applied to a real
// distribution.
//
// Needs: the ferry binary (FERRY_BIN, default target/debug/ferry), web/pkg/ (scripts/build-wasm.sh),
// /usr/bin/chromium, and docker-registry and htpasswd (apache2-utils) for the distribution
// cases, and the `oras` Python package (pip) for a tag's referrers. The tests share the
// registries and run in order: later ones copy what the first pushed. `just test-web`
// builds and runs everything.

import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { diagnose } from '../cors.js';
import {
  bytes,
  hasBlob,
  have,
  havePythonModule,
  headDigest,
  orasPush,
  pushImage,
  pushIndex,
  startDistribution,
  startFerry,
} from './support/registries.mjs';
import { ARTIFACTS, axeProblems, pageHarness } from './support/harness.mjs';

const REPO = 'library/app';
const KIB = 1024;
const MIB = 1024 * KIB;

const harness = pageHarness();
let page;
let context;
let source;
let destination;
let origin;
before(async () => {
  await harness.ready;
  ({ page, context, source, destination, origin } = harness);
});

function pageUrl(src, dst) {
  return `${origin}/ui/#src=${src}/${REPO}&dst=${dst}/${REPO}`;
}

/** Tag -> {status, source, destination, outcome, platforms} as the table shows it. */
async function tableRows() {
  return page.$$eval('#diff-table tbody tr', (rows) =>
    Object.fromEntries(
      rows.map((tr) => [
        tr.dataset.tag,
        {
          status: tr.querySelector('[data-cell="status"]').textContent.trim(),
          source: tr.querySelectorAll('.digest-cell')[0].querySelector('[data-digest]')?.dataset.digest ?? null,
          destination: tr.querySelectorAll('.digest-cell')[1].querySelector('[data-digest]')?.dataset.digest ?? null,
          outcome: tr.querySelector('[data-cell="outcome"]').textContent.trim(),
          platforms: tr.querySelector('[data-cell="platforms"]').textContent.trim(),
        },
      ]),
    ),
  );
}

async function counts() {
  return page.$$eval('[data-count]', (nodes) => Object.fromEntries(nodes.map((n) => [n.dataset.count, Number(n.textContent)])));
}

test('diff, copy all missing, and the destination holds the same digests', async () => {
  const src = source.url;
  const dst = destination.url;
  const base = bytes('base', 2 * MIB);
  const one = await pushImage(src, REPO, { tags: ['1.0', 'latest'], layers: [base, bytes('1.0', 300 * KIB)] });
  const eleven = await pushImage(src, REPO, { tags: ['1.1'], layers: [base, bytes('1.1', 400 * KIB)] });
  const index = await pushIndex(src, REPO, { tag: '2.0', platforms: ['linux/amd64', 'linux/arm64'], shared: [base], ownSize: 256 * KIB });
  await pushImage(dst, REPO, { tags: ['1.0'], layers: [base, bytes('1.0', 300 * KIB)] });
  const older = await pushImage(dst, REPO, { tags: ['1.1'], layers: [base, bytes('1.1 older', 400 * KIB)] });
  const extra = await pushImage(dst, REPO, { tags: ['0.9'], layers: [bytes('0.9', 100 * KIB)] });

  await page.goto(pageUrl(src, dst));
  await page.waitForSelector('#diff-table tbody tr[data-tag="latest"]', { timeout: 30_000 });
  assert.deepEqual(await counts(), { in_sync: 1, missing: 2, different: 1, extra: 1 });
  const before = await tableRows();
  const want = {
    '0.9': { status: 'extra', source: null, destination: extra.digest },
    '1.0': { status: 'in sync', source: one.digest, destination: one.digest },
    '1.1': { status: 'different', source: eleven.digest, destination: older.digest },
    '2.0': { status: 'missing', source: index.digest, destination: null },
    latest: { status: 'missing', source: one.digest, destination: null },
  };
  assert.deepEqual(Object.keys(before), ['0.9', '1.0', '1.1', '2.0', 'latest']);
  for (const [tag, row] of Object.entries(want)) {
    const { outcome, platforms, ...shown } = before[tag];
    assert.deepEqual(shown, row, tag);
  }
  assert.equal(before['2.0'].platforms, 'linux/amd64linux/arm64');
  assert.equal(await page.textContent('#copy-missing'), 'Copy all missing (3)');

  // Filters narrow the table and go into the hash, so the view can be bookmarked.
  await page.fill('#filter', '1.');
  assert.deepEqual(Object.keys(await tableRows()), ['1.0', '1.1']);
  await page.click('.count[data-status="in_sync"]');
  assert.deepEqual(Object.keys(await tableRows()), ['1.1']);
  assert.match(new URL(page.url()).hash, /&status=missing,different,extra&q=1\.$/);
  await page.click('.count[data-status="in_sync"]');
  await page.fill('#filter', '');

  await page.click('#copy-missing');
  await page.waitForSelector('#progress[data-state="done"]', { timeout: 60_000 });
  await page.waitForFunction(() => !document.querySelector('#results').hasAttribute('aria-busy') && document.querySelector('tr[data-tag="2.0"] [data-cell="status"]')?.textContent.trim() === 'in sync', null, { timeout: 30_000 });
  const after = await tableRows();
  const outcomes = Object.fromEntries(Object.entries(after).map(([tag, r]) => [tag, [r.status, r.outcome]]));
  assert.deepEqual(outcomes, {
    '0.9': ['extra', ''],
    '1.0': ['in sync', ''],
    '1.1': ['in sync', 'copied'],
    '2.0': ['in sync', 'copied'],
    latest: ['in sync', 'copied'],
  });
  assert.deepEqual(await counts(), { in_sync: 4, missing: 0, different: 0, extra: 1 });
  const summary = await page.textContent('#overall-text');
  assert.match(summary, /^Done: copied 3, skipped 0, failed 0 of 3 image\(s\)/);

  // Over HTTP, not through the page: the destination has every digest, children included.
  for (const [tag, digest] of [['1.0', one.digest], ['latest', one.digest], ['1.1', eleven.digest], ['2.0', index.digest]]) {
    assert.equal(await headDigest(dst, REPO, tag), digest, `destination ${tag}`);
  }
  for (const child of index.children) {
    assert.equal(await headDigest(dst, REPO, child.digest), child.digest, `index child ${child.platform.architecture}`);
    for (const blob of child.blobs) assert.ok(await hasBlob(dst, REPO, blob), `blob ${blob} of ${child.platform.architecture}`);
  }

  mkdirSync(ARTIFACTS, { recursive: true });
  const shot = join(ARTIFACTS, 'diff-after-copy.png');
  await page.screenshot({ path: shot, fullPage: true });
  console.log(`screenshot: ${shot}`);
  await page.setViewportSize({ width: 420, height: 900 });
  const narrow = join(ARTIFACTS, 'diff-after-copy-narrow.png');
  await page.screenshot({ path: narrow, fullPage: true });
  console.log(`screenshot: ${narrow}`);
  await page.setViewportSize({ width: 1280, height: 860 });
});

test('Cancel stops a copy; copying again finishes it', async () => {
  const repository = 'team/big';
  for (const tag of ['a', 'b', 'c']) await pushImage(source.url, repository, { tags: [tag], layers: [bytes(`big ${tag}`, 8 * MIB)] });
  // A slow link (4 MiB/s each way), so the copy is still running when Cancel is pressed.
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: 4 * MIB, uploadThroughput: 4 * MIB });
  await page.goto('about:blank');
  await page.goto(`${origin}/ui/#src=${source.url}/${repository}&dst=${destination.url}/${repository}`);
  await page.waitForSelector('tr[data-tag="c"]', { timeout: 30_000 });
  await page.click('#copy-missing');
  await page.waitForSelector('[data-cell="outcome"][data-state="copying"] progress', { timeout: 30_000 });
  await page.click('#cancel');
  await page.waitForSelector('#progress[data-state="cancelled"]', { timeout: 30_000 });
  await page.waitForFunction(() => !document.querySelector('#results').hasAttribute('aria-busy'), null, { timeout: 30_000 });
  assert.match(await page.textContent('#overall-text'), /^Cancelled: copied \d, skipped 0, failed 0, cancelled [1-3] of 3 image\(s\)/);
  const cancelled = await tableRows();
  for (const [tag, row] of Object.entries(cancelled)) {
    // After the diff that follows: what the page calls copied is in sync, what it calls cancelled is not.
    assert.ok(
      (row.outcome === 'copied' && row.status === 'in sync') || (row.outcome === 'cancelled' && row.status === 'missing'),
      `${tag}: ${row.status}, ${row.outcome}`,
    );
  }

  await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
  await page.click('#copy-missing');
  await page.waitForSelector('#progress[data-state="done"]', { timeout: 60_000 });
  await page.waitForFunction(() => !document.querySelector('#results').hasAttribute('aria-busy') && document.querySelector('[data-count="in_sync"]')?.textContent === '3', null, { timeout: 30_000 });
  for (const tag of ['a', 'b', 'c']) {
    assert.equal(await headDigest(destination.url, repository, tag), await headDigest(source.url, repository, tag), tag);
  }
  await cdp.detach();
});

test('registries a browser cannot use are diagnosed by name, with the fix', async (t) => {
  const cases = [
    {
      name: 'ferry serve without --cors-origin',
      start: () => startFerry(['--storage', 'memory']),
      verdict: 'no_allow_origin',
      words: ['answers, but sends no Access-Control-Allow-Origin for', `ferry serve --cors-origin ${origin}`, `Access-Control-Allow-Origin: ["${origin}"]`],
    },
    {
      name: 'distribution with no http.headers',
      tools: ['docker-registry'],
      start: () => startDistribution(),
      verdict: 'no_allow_origin',
      words: ['answers, but sends no Access-Control-Allow-Origin for', 'Access-Control-Expose-Headers: ["Docker-Content-Digest", "Location", "Link", "Range"'],
    },
    {
      // The classic: CORS headers set, but with auth on, distribution answers the
      // preflight OPTIONS 401, so a page that sends credentials never gets through.
      name: 'distribution with auth and CORS headers',
      tools: ['docker-registry', 'htpasswd'],
      start: distributionWithAuth,
      credentials: { username: 'alice', password: 'secret' },
      verdict: 'preflight',
      words: ['allows simple reads from', 'the preflight (OPTIONS) is not answered with a 2xx', 'answered 401', 'answers preflights before auth'],
    },
  ];
  for (const c of cases) {
    await t.test(c.name, async (t) => {
      const missing = (c.tools ?? []).filter((tool) => !have(tool));
      if (missing.length) return t.skip(`not installed: ${missing.join(', ')}`);
      const peer = await c.start();
      harness.cleanup(() => peer.stop());
      await page.goto('about:blank');
      if (c.credentials) {
        // Credentials are typed, never put in the hash: fill the form, Enter runs the diff.
        await page.goto(`${origin}/ui/`);
        await page.fill('#src-registry', source.url);
        await page.fill('#src-repository', REPO);
        await page.fill('#dst-registry', peer.url);
        await page.fill('#dst-repository', REPO);
        await page.click('#side-dst summary');
        await page.selectOption('#dst-auth-kind', 'basic');
        await page.fill('#dst-username', c.credentials.username);
        await page.fill('#dst-password', c.credentials.password);
        await page.press('#dst-password', 'Enter');
      } else {
        await page.goto(pageUrl(source.url, peer.url));
      }
      const section = page.locator(`#diagnosis section[data-registry="${peer.url}"]`);
      await section.waitFor({ timeout: 30_000 });
      assert.equal(await section.getAttribute('data-verdict'), c.verdict);
      const text = await section.innerText();
      assert.ok(text.startsWith(`The destination ${peer.url} `), text);
      for (const w of c.words) assert.ok(text.includes(w), `"${w}" in:\n${text}`);
      assert.match(await page.textContent('#message'), /^Comparing failed: /);
      assert.ok(!new URL(page.url()).hash.includes('secret'), 'credentials stay out of the URL');
      mkdirSync(ARTIFACTS, { recursive: true });
      const shot = join(ARTIFACTS, `diagnosis-${c.name.replace(/[^a-z0-9]+/gi, '-')}.png`);
      await page.screenshot({ path: shot, fullPage: true });
      console.log(`screenshot: ${shot}`);
    });
  }
});

test("the page's distribution fix, applied, lets the page diff and copy into distribution", async (t) => {
  if (!have('docker-registry')) return t.skip('docker-registry not installed');
  const peer = await startDistribution({ http: fixFor() });
  harness.cleanup(() => peer.stop());
  await page.goto('about:blank');
  await page.goto(pageUrl(source.url, peer.url));
  await page.waitForSelector('#diff-table tbody tr[data-tag="latest"]', { timeout: 30_000 });
  assert.deepEqual(await counts(), { in_sync: 0, missing: 4, different: 0, extra: 0 });
  await page.click('#check-cors');
  const ok = page.locator(`#diagnosis section[data-registry="${peer.url}"][data-verdict="ok"]`);
  await ok.waitFor({ timeout: 30_000 });
  // The index alone first, by its checkbox and "Copy selected"; then the rest.
  await page.check('tr[data-tag="2.0"] .select-row');
  assert.equal(await page.textContent('#copy-selected'), 'Copy selected (1)');
  await page.click('#copy-selected');
  await page.waitForSelector('#progress[data-state="done"]', { timeout: 60_000 });
  await page.waitForFunction(() => !document.querySelector('#results').hasAttribute('aria-busy') && document.querySelector('[data-count="in_sync"]')?.textContent === '1', null, { timeout: 30_000 });
  const first = await tableRows();
  assert.deepEqual([first['2.0'].status, first['2.0'].outcome, first['1.1'].status], ['in sync', 'copied', 'missing']);
  await page.click('#copy-missing');
  await page.waitForSelector('#progress[data-state="done"]', { timeout: 60_000 });
  await page.waitForFunction(() => !document.querySelector('#results').hasAttribute('aria-busy') && document.querySelector('[data-count="in_sync"]')?.textContent === '4', null, { timeout: 30_000 });
  for (const tag of ['1.0', '1.1', '2.0', 'latest']) {
    assert.equal(await headDigest(peer.url, REPO, tag), await headDigest(source.url, REPO, tag), tag);
  }
});

/** distribution with Basic auth and the page's CORS fix in http.headers. */
async function distributionWithAuth() {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-web-htpasswd-'));
  const file = join(dir, 'htpasswd');
  const made = spawnSync('htpasswd', ['-Bbc', file, 'alice', 'secret']);
  assert.equal(made.status, 0, `htpasswd -Bbc ${file}: ${made.stderr}`);
  const peer = await startDistribution({ http: fixFor(), config: `auth: {htpasswd: {realm: test, path: ${file}}}` });
  return {
    url: peer.url,
    async stop() {
      await peer.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The page's own distribution fix for this origin, as the lines under `http:`. */
function fixFor() {
  const d = diagnose({ registry: 'http://peer', pageOrigin: origin, reachable: true, simple: { ok: false } }, 'destination');
  const yaml = d.fixes.distribution.split('\n');
  return yaml.slice(yaml.indexOf('http:') + 1).join('\n');
}

test("a tag's referrers: an oras-pushed SBOM shows in the table, and copying brings it", async (t) => {
  if (!havePythonModule('oras')) return t.skip('python3 cannot import oras (pip install oras)');
  const repository = 'signed/app';
  const image = await pushImage(source.url, repository, { tags: ['1.0'], layers: [bytes('signed', 16 * KIB)] });
  const sbom = await orasPush(source.url, repository, 'sbom', Buffer.from('{"spdxVersion":"SPDX-2.3"}'), 'application/spdx+json', image);

  await page.goto('about:blank');
  await page.goto(`${origin}/ui/#src=${source.url}/${repository}&dst=${destination.url}/${repository}`);
  await page.waitForSelector('#diff-table tbody tr[data-tag="1.0"]', { timeout: 30_000 });
  const referrers = (tag) => page.$eval(`tr[data-tag="${tag}"] [data-cell="referrers"]`, (td) => [td.textContent.trim(), td.querySelector('[title]')?.title ?? '']);
  assert.deepEqual(await referrers('1.0'), ['1 (1 missing)', 'application/spdx+json: missing']);
  assert.deepEqual(await axeProblems(page, 'referrers in the table'), []);

  // The image alone ("Copy selected"), not the SBOM's own tag: its referrers travel with it.
  await page.check('tr[data-tag="1.0"] .select-row');
  await page.click('#copy-selected');
  await page.waitForSelector('#progress[data-state="done"]', { timeout: 60_000 });
  await page.waitForFunction(() => !document.querySelector('#results').hasAttribute('aria-busy') && document.querySelector('tr[data-tag="1.0"] [data-cell="status"]')?.textContent.trim() === 'in sync', null, { timeout: 30_000 });
  assert.deepEqual(await referrers('1.0'), ['1', 'application/spdx+json: in sync']);
  assert.equal(await headDigest(destination.url, repository, 'sbom'), null, "the SBOM's tag was not copied");

  // Over HTTP: the destination lists the SBOM as a referrer of the image, at the same digest.
  const listed = await (await fetch(`${destination.url}/v2/${repository}/referrers/${image.digest}`)).json();
  assert.deepEqual(listed.manifests.map((m) => [m.digest, m.artifactType]), [[sbom, 'application/spdx+json']]);
  assert.equal(await headDigest(destination.url, repository, sbom), sbom);
});
