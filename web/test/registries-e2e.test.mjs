// The registry-wide view end to end, in the system Chromium: two `ferry serve` registries
// with several repositories each, every repository's rows with the right status, the
// filters and the hash, "Copy all missing" across repositories and both registries
// compared over HTTP afterwards. An axe-core scan of the page in each state finds no
// serious or critical violation. Last, a 2,000-tag repository pair: how long it takes to
// render and to filter is printed, not asserted (benchmarks hold targets).
//
// Then a distribution with no CORS headers as the source: the page explains it, and diffs
// and copies through `ferry serve --relay`.
//
// Needs what e2e.test.mjs needs (docker-registry and htpasswd for the relay case), plus
// axe-core (package.json, installed by `npm ci`).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { chromium } from 'playwright-core';

import { ROOT, OCI_MANIFEST, bytes, hasBlob, have, headDigest, pushImage, pushIndex, putManifest, startDistribution, startFerry, freePort } from './support/registries.mjs';

const AXE = createRequire(import.meta.url).resolve('axe-core/axe.min.js');
const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const KIB = 1024;

let page;
let context;
let profile;
let source;
let destination;
let origin;
const cleanups = [];

before(async () => {
  assert.ok(existsSync(join(ROOT, 'web/pkg/ferry_wasm.js')), 'web/pkg/ferry_wasm.js is missing: run scripts/build-wasm.sh (or just test-web)');
  const port = await freePort();
  origin = `http://localhost:${port}`;
  source = await startFerry(['--storage', 'memory', '--ui', join(ROOT, 'web'), '--cors-origin', origin], { addr: `127.0.0.1:${port}` });
  cleanups.push(() => source.stop());
  destination = await startFerry(['--storage', 'memory', '--cors-origin', origin]);
  cleanups.push(() => destination.stop());
  profile = mkdtempSync(join(tmpdir(), 'ferry-web-chromium-'));
  context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, viewport: { width: 1280, height: 860 } });
  cleanups.push(async () => {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.on('pageerror', (e) => console.log(`page error: ${e.message}`));
});

after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

/** axe-core's serious and critical violations of the page as it is now, as readable lines. */
async function axeProblems(state) {
  if (!(await page.evaluate(() => 'axe' in window))) await page.addScriptTag({ path: AXE });
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${state}: ${v.impact} ${v.id} (${v.help}) at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
}

/** `repository:tag` -> {status, source, destination, outcome} of the rows in the DOM. */
async function wideRows() {
  return page.$$eval('#reg-table tbody tr.vrow', (rows) =>
    Object.fromEntries(
      rows.map((tr) => [
        `${tr.dataset.repository}:${tr.dataset.tag}`,
        {
          status: tr.querySelector('[data-cell="status"]').textContent.trim(),
          source: tr.querySelector('[data-cell="source"]').dataset.digest ?? null,
          destination: tr.querySelector('[data-cell="destination"]').dataset.digest ?? null,
          outcome: tr.querySelector('[data-cell="outcome"]').textContent.trim(),
        },
      ]),
    ),
  );
}

async function wideCounts() {
  return page.$$eval('[data-rcount]', (nodes) => Object.fromEntries(nodes.map((n) => [n.dataset.rcount, Number(n.textContent)])));
}

async function compared(n) {
  await page.waitForFunction((want) => document.querySelector('#reg-message')?.textContent === want, `Compared ${n} repositories.`, { timeout: 60_000 });
}

test('registry-wide diff, filters, hash and copy all missing across repositories', async () => {
  const src = source.url;
  const dst = destination.url;
  const base = bytes('wide base', 64 * KIB);
  const a10 = await pushImage(src, 'team/a', { tags: ['1.0'], layers: [base, bytes('a 1.0', 8 * KIB)] });
  const a11 = await pushImage(src, 'team/a', { tags: ['1.1'], layers: [base, bytes('a 1.1', 8 * KIB)] });
  const b20 = await pushIndex(src, 'team/b', { tag: '2.0', platforms: ['linux/amd64', 'linux/arm64'], shared: [base], ownSize: 8 * KIB });
  const x1 = await pushImage(src, 'tools/x', { tags: ['1'], layers: [bytes('x 1', 8 * KIB)] });
  await pushImage(dst, 'team/a', { tags: ['1.0'], layers: [base, bytes('a 1.0', 8 * KIB)] });
  const x1old = await pushImage(dst, 'tools/x', { tags: ['1'], layers: [bytes('x 1 older', 8 * KIB)] });
  const only = await pushImage(dst, 'other/only', { tags: ['0.9'], layers: [bytes('only', 8 * KIB)] });

  await page.goto(`${origin}/ui/`);
  const problems = await axeProblems('empty page');

  await page.goto(`${origin}/ui/#rsrc=${src}&rdst=${dst}`);
  await compared(4);
  assert.deepEqual(await wideCounts(), { in_sync: 1, missing: 2, different: 1, extra: 1 });
  const rows = await wideRows();
  assert.deepEqual(rows, {
    'other/only:0.9': { status: 'extra', source: null, destination: only.digest, outcome: '' },
    'team/a:1.0': { status: 'in sync', source: a10.digest, destination: a10.digest, outcome: '' },
    'team/a:1.1': { status: 'missing', source: a11.digest, destination: null, outcome: '' },
    'team/b:2.0': { status: 'missing', source: b20.digest, destination: null, outcome: '' },
    'tools/x:1': { status: 'different', source: x1.digest, destination: x1old.digest, outcome: '' },
  });
  assert.equal(await page.textContent('#reg-copy-missing'), 'Copy all missing (3)');
  problems.push(...(await axeProblems('registry-wide results')));

  // Filters by repository, tag and status, kept in the hash; a reload restores the view.
  await page.fill('#reg-filter-repo', 'team');
  assert.deepEqual(Object.keys(await wideRows()), ['team/a:1.0', 'team/a:1.1', 'team/b:2.0']);
  await page.fill('#reg-filter-tag', '1.');
  assert.deepEqual(Object.keys(await wideRows()), ['team/a:1.0', 'team/a:1.1']);
  await page.click('.count[data-rstatus="in_sync"]');
  assert.deepEqual(Object.keys(await wideRows()), ['team/a:1.1']);
  const hash = new URL(page.url()).hash;
  assert.equal(hash, `#rsrc=${src}&rdst=${dst}&rstatus=missing,different,extra&rrepo=team&rq=1.`);
  await page.goto('about:blank');
  await page.goto(`${origin}/ui/${hash}`);
  await compared(4);
  assert.deepEqual(Object.keys(await wideRows()), ['team/a:1.1']);
  assert.equal(await page.inputValue('#reg-filter-repo'), 'team');
  await page.click('.count[data-rstatus="in_sync"]');
  await page.fill('#reg-filter-repo', '');
  await page.fill('#reg-filter-tag', '');

  // A prefix narrows the repositories read.
  await page.goto('about:blank');
  await page.goto(`${origin}/ui/#rsrc=${src}&rdst=${dst}&prefix=tools`);
  await compared(1);
  assert.deepEqual(Object.keys(await wideRows()), ['tools/x:1']);

  await page.goto('about:blank');
  await page.goto(`${origin}/ui/#rsrc=${src}&rdst=${dst}`);
  await compared(4);
  await page.click('#reg-copy-missing');
  await page.waitForSelector('#reg-progress[data-state="done"]', { timeout: 60_000 });
  await compared(4);
  assert.match(await page.textContent('#reg-overall'), /^Done: copied 3, skipped 0, failed 0 of 3 image\(s\) in 3 repositories$/);
  assert.deepEqual(await wideCounts(), { in_sync: 4, missing: 0, different: 0, extra: 1 });
  const outcomes = Object.fromEntries(Object.entries(await wideRows()).map(([key, r]) => [key, [r.status, r.outcome]]));
  assert.deepEqual(outcomes, {
    'other/only:0.9': ['extra', ''],
    'team/a:1.0': ['in sync', ''],
    'team/a:1.1': ['in sync', 'copied'],
    'team/b:2.0': ['in sync', 'copied'],
    'tools/x:1': ['in sync', 'copied'],
  });
  problems.push(...(await axeProblems('after copy all missing')));

  // Over HTTP, not through the page: every source tag at the same digest, index children and their blobs too.
  for (const [repository, tag, digest] of [['team/a', '1.0', a10.digest], ['team/a', '1.1', a11.digest], ['team/b', '2.0', b20.digest], ['tools/x', '1', x1.digest]]) {
    assert.equal(await headDigest(dst, repository, tag), digest, `${repository}:${tag}`);
  }
  for (const child of b20.children) {
    assert.equal(await headDigest(dst, 'team/b', child.digest), child.digest, `index child ${child.platform.architecture}`);
    for (const blob of child.blobs) assert.ok(await hasBlob(dst, 'team/b', blob), `blob ${blob} of ${child.platform.architecture}`);
  }

  // The single-repository view's states: a diff, and a registry without CORS diagnosed.
  await page.goto('about:blank');
  await page.goto(`${origin}/ui/#src=${src}/team/a&dst=${dst}/team/a`);
  await page.waitForSelector('#diff-table tbody tr[data-tag="1.1"]', { timeout: 30_000 });
  problems.push(...(await axeProblems('repository diff')));
  const closed = await startFerry(['--storage', 'memory']);
  cleanups.push(() => closed.stop());
  await page.goto('about:blank');
  await page.goto(`${origin}/ui/#src=${src}/team/a&dst=${closed.url}/team/a`);
  await page.locator(`#diagnosis section[data-registry="${closed.url}"]`).waitFor({ timeout: 30_000 });
  problems.push(...(await axeProblems('CORS diagnosis')));
  assert.deepEqual(problems, []);
});

test('a distribution without CORS: explained, then diffed and copied through ferry serve --relay', async (t) => {
  const missing = ['docker-registry', 'htpasswd'].filter((tool) => !have(tool));
  if (missing.length) return t.skip(`not installed: ${missing.join(', ')}`);
  const repository = 'relayed/app';
  const peer = await startDistribution();
  cleanups.push(() => peer.stop());
  const one = await pushImage(peer.url, repository, { tags: ['1.0', 'latest'], layers: [bytes('relayed', 32 * KIB)] });
  const index = await pushIndex(peer.url, repository, { tag: '2.0', platforms: ['linux/amd64', 'linux/arm64'], shared: [bytes('relayed base', 16 * KIB)], ownSize: 8 * KIB });
  const dir = mkdtempSync(join(tmpdir(), 'ferry-web-relay-'));
  const users = join(dir, 'htpasswd');
  const made = spawnSync('htpasswd', ['-Bbc', users, 'page', 'relay-Pa55']);
  assert.equal(made.status, 0, `htpasswd: ${made.stderr}`);
  const relay = await startFerry(['--storage', 'memory', '--htpasswd', users, '--relay', '--relay-allow', new URL(peer.url).host, '--relay-allow', new URL(destination.url).host, '--cors-origin', origin]);
  cleanups.push(async () => {
    await relay.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  await page.goto('about:blank');
  await page.goto(`${origin}/ui/#src=${peer.url}/${repository}&dst=${destination.url}/${repository}`);
  const section = page.locator(`#diagnosis section[data-registry="${peer.url}"]`);
  await section.waitFor({ timeout: 30_000 });
  assert.equal(await section.getAttribute('data-verdict'), 'no_allow_origin');
  assert.match(await page.textContent('#message'), /^Comparing failed: .*through a relay: see "Through a relay" in the form\.$/);
  const problems = await axeProblems('no CORS, explained');

  await page.click('#relay summary');
  await page.check('#relay-use');
  await page.fill('#relay-url', relay.url);
  await page.fill('#relay-username', 'page');
  await page.fill('#relay-password', 'wrong');
  await page.click('#compare');
  await page.waitForFunction(() => /refused the job \(HTTP 401\): check the relay username and password/.test(document.querySelector('#message')?.textContent), null, { timeout: 30_000 });
  await page.fill('#relay-password', 'relay-Pa55');
  await page.click('#compare');
  await page.waitForSelector('#diff-table tbody tr[data-tag="latest"]', { timeout: 30_000 });
  assert.deepEqual(await page.$$eval('#diff-table tbody tr', (rows) => rows.map((r) => [r.dataset.tag, r.dataset.status])), [['1.0', 'missing'], ['2.0', 'missing'], ['latest', 'missing']]);
  problems.push(...(await axeProblems('diffed through the relay')));

  await page.click('#copy-missing');
  await page.waitForSelector('#progress[data-state="done"]', { timeout: 60_000 });
  await page.waitForFunction(() => !document.querySelector('#results').hasAttribute('aria-busy') && document.querySelector('[data-count="in_sync"]')?.textContent === '3', null, { timeout: 30_000 });
  assert.match(await page.textContent('#overall-text'), /^Done: copied 3, skipped 0, failed 0 of 3 image\(s\)/);
  for (const [tag, digest] of [['1.0', one.digest], ['latest', one.digest], ['2.0', index.digest]]) {
    assert.equal(await headDigest(destination.url, repository, tag), digest, tag);
  }
  for (const child of index.children) {
    assert.equal(await headDigest(destination.url, repository, child.digest), child.digest, `index child ${child.platform.architecture}`);
    for (const blob of child.blobs) assert.ok(await hasBlob(destination.url, repository, blob), `blob ${blob}`);
  }
  problems.push(...(await axeProblems('copied through the relay')));
  assert.deepEqual(problems, []);
  await page.uncheck('#relay-use');
});

// 2,000 rows as 40 repositories of 50 tags: ferry-wasm's diff of ONE 2,000-tag repository
// sends every tag's HEAD at once, and Chromium fails the requests beyond its limit of
// outstanding requests ("Failed to fetch"), so the pair is spread over repositories.
test('2,000 tags across a registry pair: render and filter times (reported, not asserted)', async () => {
  const repositories = Array.from({ length: 40 }, (_, i) => `perf/r${String(i).padStart(2, '0')}`);
  const tags = Array.from({ length: 50 }, (_, i) => `t${String(i).padStart(2, '0')}`);
  for (const repository of repositories) {
    const image = await pushImage(source.url, repository, { tags: [tags[0]], layers: [bytes('many', 1 * KIB)] });
    for (const tag of tags.slice(1)) await putManifest(source.url, repository, tag, OCI_MANIFEST, image.manifest);
    await pushImage(destination.url, repository, { tags: [tags[0]], layers: [bytes('many', 1 * KIB)] });
    for (const tag of tags.slice(1, 25)) await putManifest(destination.url, repository, tag, OCI_MANIFEST, image.manifest);
  }

  const figures = [];
  const measure = async (what, action, done) => {
    const start = performance.now();
    await action();
    await page.waitForFunction(done, null, { timeout: 120_000 }).catch(async (error) => {
      const shown = await page.evaluate(() => [document.querySelector('#reg-message')?.textContent, document.querySelector('#reg-shown')?.textContent]);
      throw new Error(`${what}: ${error.message}; the page shows ${JSON.stringify(shown).slice(0, 2000)}`);
    });
    figures.push(`${what}: ${(performance.now() - start).toFixed(0)} ms`);
  };

  await page.goto('about:blank');
  await measure(
    '40 repositories listed, diffed and rendered',
    () => page.goto(`${origin}/ui/#rsrc=${source.url}&rdst=${destination.url}&prefix=perf`),
    () => document.querySelector('#reg-message')?.textContent === 'Compared 40 repositories.',
  );
  assert.deepEqual(await wideCounts(), { in_sync: 1000, missing: 1000, different: 0, extra: 0 });
  const inDom = await page.$$eval('#reg-table tbody tr.vrow', (r) => r.length);
  assert.ok(inDom < 100, `only the visible rows are in the DOM, not ${inDom}`);
  await measure('filter to tags containing "4"', () => page.fill('#reg-filter-tag', '4'), () => document.querySelector('#reg-shown')?.textContent.startsWith('560 of 2000'));
  await measure('filter to repositories containing "r1"', () => page.fill('#reg-filter-repo', 'r1'), () => document.querySelector('#reg-shown')?.textContent.startsWith('140 of 2000'));
  await page.fill('#reg-filter-repo', '');
  await page.fill('#reg-filter-tag', '');
  await measure('only missing rows', () => page.click('.count[data-rstatus="in_sync"]'), () => document.querySelector('#reg-shown')?.textContent.startsWith('1000 of 2000'));
  await measure('scroll to the end', () => page.$eval('#reg-scroll', (s) => s.scrollTo(0, s.scrollHeight)), () => Boolean(document.querySelector('#reg-table tr[data-repository="perf/r39"][data-tag="t49"]')));
  for (const line of figures) console.log(`2,000 rows: ${line}`);
});
