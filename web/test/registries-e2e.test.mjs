// The registry-wide view end to end, in the system Chromium: two `ferry serve` registries
// with several repositories each, every repository's rows with the right status, the
// filters and the hash, "Copy all missing" across repositories and both registries
// compared over HTTP afterwards. An axe-core scan of the page in each state finds no
// serious or critical violation.
//
// Then a distribution with no CORS headers as the source: the page explains it, and diffs
// and copies through `ferry serve --relay`, one repository and then whole registries (one
// diff job, one copy job) behind a proxy that cuts every job's stream, so the page
// re-attaches to each job. Last, a 2,000-tag repository pair: how long it takes to list,
// diff, render and filter is printed, not asserted (benchmarks hold targets).
//
// Needs what e2e.test.mjs needs (docker-registry and htpasswd for the relay cases), plus
// axe-core (package.json, installed by `npm ci`).

import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { OCI_MANIFEST, bytes, hasBlob, have, headDigest, pushImage, pushIndex, putManifest, startDistribution, startFerry } from './support/registries.mjs';
import { startCuttingProxy } from './support/cutting-proxy.mjs';
import { axeProblems as axeProblemsOf, pageHarness } from './support/harness.mjs';

const KIB = 1024;

const harness = pageHarness();
let page;
let source;
let destination;
let origin;
before(async () => {
  await harness.ready;
  ({ page, source, destination, origin } = harness);
});

const axeProblems = (state) => axeProblemsOf(page, state);

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
  harness.cleanup(() => closed.stop());
  await page.goto('about:blank');
  await page.goto(`${origin}/ui/#src=${src}/team/a&dst=${closed.url}/team/a`);
  await page.locator(`#diagnosis section[data-registry="${closed.url}"]`).waitFor({ timeout: 30_000 });
  problems.push(...(await axeProblems('CORS diagnosis')));
  assert.deepEqual(problems, []);
});

const RELAY_PASSWORD = 'relay-Pa55';

/**
 * A distribution without CORS, and a `ferry serve --relay` with one user (`page`) that
 * may reach it and the destination; started once for the file.
 */
let relayed;
async function relaySetup() {
  if (relayed) return relayed;
  const peer = await startDistribution();
  harness.cleanup(() => peer.stop());
  const dir = mkdtempSync(join(tmpdir(), 'ferry-web-relay-'));
  const users = join(dir, 'htpasswd');
  const made = spawnSync('htpasswd', ['-Bbc', users, 'page', RELAY_PASSWORD]);
  assert.equal(made.status, 0, `htpasswd: ${made.stderr}`);
  const relay = await startFerry(['--storage', 'memory', '--htpasswd', users, '--relay', '--relay-allow', new URL(peer.url).host, '--relay-allow', new URL(destination.url).host, '--cors-origin', origin]);
  harness.cleanup(async () => {
    await relay.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  relayed = { peer, relay };
  return relayed;
}

/** Ticks "Go through the relay" and gives its URL and user. */
async function useRelay(url, password = RELAY_PASSWORD) {
  if (!(await page.$eval('#relay', (d) => d.open))) await page.click('#relay summary');
  await page.check('#relay-use');
  await page.fill('#relay-url', url);
  await page.fill('#relay-username', 'page');
  await page.fill('#relay-password', password);
}

test('a distribution without CORS: explained, then diffed and copied through ferry serve --relay', async (t) => {
  const missing = ['docker-registry', 'htpasswd'].filter((tool) => !have(tool));
  if (missing.length) return t.skip(`not installed: ${missing.join(', ')}`);
  const repository = 'relayed/app';
  const { peer, relay } = await relaySetup();
  const one = await pushImage(peer.url, repository, { tags: ['1.0', 'latest'], layers: [bytes('relayed', 32 * KIB)] });
  const index = await pushIndex(peer.url, repository, { tag: '2.0', platforms: ['linux/amd64', 'linux/arm64'], shared: [bytes('relayed base', 16 * KIB)], ownSize: 8 * KIB });

  await page.goto('about:blank');
  await page.goto(`${origin}/ui/#src=${peer.url}/${repository}&dst=${destination.url}/${repository}`);
  const section = page.locator(`#diagnosis section[data-registry="${peer.url}"]`);
  await section.waitFor({ timeout: 30_000 });
  assert.equal(await section.getAttribute('data-verdict'), 'no_allow_origin');
  assert.match(await page.textContent('#message'), /^Comparing failed: .*through a relay: see "Through a relay" in the form\.$/);
  const problems = await axeProblems('no CORS, explained');

  await useRelay(relay.url, 'wrong');
  await page.click('#compare');
  await page.waitForFunction(() => /refused the job \(HTTP 401\): check the relay username and password/.test(document.querySelector('#message')?.textContent), null, { timeout: 30_000 });
  await page.fill('#relay-password', RELAY_PASSWORD);
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

test("whole registries through the relay, every job stream cut by a proxy: one diff job and one copy job, each re-attached", async (t) => {
  const missing = ['docker-registry', 'htpasswd'].filter((tool) => !have(tool));
  if (missing.length) return t.skip(`not installed: ${missing.join(', ')}`);
  const { peer, relay } = await relaySetup();
  const a1 = await pushImage(peer.url, 'wide/a', { tags: ['1', 'latest'], layers: [bytes('wide a', 16 * KIB)] });
  const a2 = await pushIndex(peer.url, 'wide/a', { tag: '2', platforms: ['linux/amd64', 'linux/arm64'], shared: [bytes('wide base', 16 * KIB)], ownSize: 4 * KIB });
  const b1 = await pushImage(peer.url, 'wide/b', { tags: ['1'], layers: [bytes('wide b', 16 * KIB)] });
  const b1old = await pushImage(destination.url, 'wide/b', { tags: ['1'], layers: [bytes('wide b older', 16 * KIB)] });
  // Outside the prefix: read by the relay (its catalog job is whole), never shown.
  await pushImage(peer.url, 'elsewhere/c', { tags: ['1'], layers: [bytes('elsewhere', 4 * KIB)] });
  // Each job's answer is cut a little past job_started: mid-job, mid-line.
  const proxy = await startCuttingProxy(relay.url, { cut: (request) => request === 'POST /jobs', afterBodyBytes: 160 });
  harness.cleanup(() => proxy.stop());

  /** A timeout, with what the page and the proxy saw. */
  const shown = async (error) => {
    const texts = await page.evaluate(() => [document.querySelector('#reg-overall')?.textContent, document.querySelector('#reg-message')?.textContent]);
    throw new Error(`${error.message}; the page shows ${JSON.stringify(texts)}; the proxy forwarded ${proxy.requests.join(', ')}`);
  };
  await page.goto('about:blank');
  await page.goto(`${origin}/ui/`);
  await page.click('#registries summary');
  await page.fill('#reg-src', peer.url);
  await page.fill('#reg-dst', destination.url);
  await page.fill('#reg-prefix', 'wide');
  // Directly, the browser cannot read a catalog sent without CORS headers: the page says
  // where to turn.
  await page.click('#reg-compare');
  await page.waitForFunction(() => /^Comparing failed: .*can still be reached through a relay: see "Through a relay" in the form above\.$/.test(document.querySelector('#reg-message')?.textContent), null, { timeout: 30_000 }).catch(shown);
  const problems = await axeProblems('whole registries, a catalog without CORS');
  await useRelay(proxy.url);
  // The job's last line is held back: the rows are on the page before it, from the
  // relay's repository_diffed lines.
  const held = proxy.holdAt('{"event":"diff_finished"');
  await page.click('#reg-compare');
  const release = await held;
  await page.waitForFunction(() => document.querySelector('#reg-shown')?.textContent.startsWith('4 of 4 row(s) shown, 2 of 2 repositories read'), null, { timeout: 30_000 }).catch(shown);
  assert.equal(await page.getAttribute('#reg-results', 'aria-busy'), 'true', 'the job has not ended');
  release();
  await page.waitForFunction(() => /^Compared 2 repositories\./.test(document.querySelector('#reg-message')?.textContent), null, { timeout: 60_000 }).catch(shown);
  assert.match(await page.textContent('#reg-message'), /The relay's stream broke off 1 time\(s\); the page re-attached to job [0-9a-f]+ each time/);
  assert.deepEqual(await wideCounts(), { in_sync: 0, missing: 3, different: 1, extra: 0 });
  assert.deepEqual(await wideRows(), {
    'wide/a:1': { status: 'missing', source: a1.digest, destination: null, outcome: '' },
    'wide/a:2': { status: 'missing', source: a2.digest, destination: null, outcome: '' },
    'wide/a:latest': { status: 'missing', source: a1.digest, destination: null, outcome: '' },
    'wide/b:1': { status: 'different', source: b1.digest, destination: b1old.digest, outcome: '' },
  });
  problems.push(...(await axeProblems('whole registries through the relay, re-attached')));

  await page.click('#reg-copy-missing');
  await page.waitForSelector('#reg-progress[data-state="done"]', { timeout: 60_000 }).catch(shown);
  await page.waitForFunction(() => /^Compared 2 repositories\./.test(document.querySelector('#reg-message')?.textContent) && !document.querySelector('#reg-results').hasAttribute('aria-busy'), null, { timeout: 60_000 }).catch(shown);
  assert.match(await page.textContent('#reg-overall'), /^Done: copied 4, skipped 0, failed 0 of 4 image\(s\) in 2 repositories$/);
  assert.deepEqual(await wideCounts(), { in_sync: 4, missing: 0, different: 0, extra: 0 });
  problems.push(...(await axeProblems('whole registries copied through the relay')));
  assert.deepEqual(problems, []);

  // A typed list: the relay reads those repositories only, whatever the catalogs hold.
  await page.fill('#reg-prefix', '');
  await page.fill('#reg-repos', 'wide/b\nelsewhere/c');
  await page.click('#reg-compare');
  await page.waitForFunction(() => /^Compared 2 repositories\./.test(document.querySelector('#reg-message')?.textContent) && !document.querySelector('#reg-results').hasAttribute('aria-busy'), null, { timeout: 60_000 }).catch(shown);
  assert.deepEqual(Object.fromEntries(Object.entries(await wideRows()).map(([key, r]) => [key, r.status])), { 'elsewhere/c:1': 'missing', 'wide/b:1': 'in sync' });
  assert.match(new URL(page.url()).hash, /&repos=wide\/b,elsewhere\/c/);

  // Four jobs (the diff, the ONE copy of four images over two repositories, the diff
  // after it, the listed diff), each answer cut and each job re-attached from where its
  // reader stopped.
  const posts = proxy.requests.filter((r) => r === 'POST /jobs');
  const reattaches = proxy.requests.filter((r) => /^GET \/jobs\/[0-9a-f]+\/events\?offset=[1-9]\d*$/.test(r));
  assert.equal(posts.length, 4, proxy.requests.join('\n'));
  assert.equal(proxy.cuts, 4);
  assert.equal(reattaches.length, 4, proxy.requests.join('\n'));

  for (const [repository, tag, digest] of [['wide/a', '1', a1.digest], ['wide/a', 'latest', a1.digest], ['wide/a', '2', a2.digest], ['wide/b', '1', b1.digest]]) {
    assert.equal(await headDigest(destination.url, repository, tag), digest, `${repository}:${tag}`);
  }
  for (const child of a2.children) {
    assert.equal(await headDigest(destination.url, 'wide/a', child.digest), child.digest, `index child ${child.platform.architecture}`);
    for (const blob of child.blobs) assert.ok(await hasBlob(destination.url, 'wide/a', blob), `blob ${blob}`);
  }
  assert.equal(await headDigest(destination.url, 'elsewhere/c', '1'), null, 'outside the prefix, nothing copied');
  await page.uncheck('#relay-use');
});

// One repository of 2,000 tags: the source's tags are one small image tagged 2,000 times
// (raw manifest PUTs), the destination holds the first 1,700 of them and a different
// image under 300 of those. The core keeps at most 16 requests in flight per registry,
// so the browser is never asked for thousands of fetches at once.
test('a 2,000-tag repository pair: list, diff, render and filter times (reported, not asserted)', async () => {
  const repository = 'perf/big';
  const tags = Array.from({ length: 2000 }, (_, i) => `t${String(i).padStart(4, '0')}`);
  const image = await pushImage(source.url, repository, { tags: [tags[0]], layers: [bytes('many', 1 * KIB)] });
  const other = await pushImage(destination.url, repository, { tags: [tags[0]], layers: [bytes('many, older', 1 * KIB)] });
  await pushImage(destination.url, repository, { tags: [tags[300]], layers: [bytes('many', 1 * KIB)] });
  const put = (base, tag, manifest) => putManifest(base, repository, tag, OCI_MANIFEST, manifest);
  await inBatches(tags.slice(1), (tag) => put(source.url, tag, image.manifest));
  // 1,700 on the destination: t0000-t0299 differ, t0300-t1699 in sync, t1700-t1999 missing.
  await inBatches(tags.slice(1, 300), (tag) => put(destination.url, tag, other.manifest));
  await inBatches(tags.slice(301, 1700), (tag) => put(destination.url, tag, image.manifest));

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

  // The page reads the source through a proxy that only counts the requests it forwards.
  const counter = await startCuttingProxy(source.url, { cut: () => false, afterBodyBytes: 0 });
  harness.cleanup(() => counter.stop());
  await page.goto('about:blank');
  await measure(
    'listed, diffed and rendered',
    () => page.goto(`${origin}/ui/#rsrc=${counter.url}&rdst=${destination.url}&repos=${repository}`),
    () => document.querySelector('#reg-message')?.textContent === 'Compared 1 repositories.',
  );
  assert.deepEqual(await wideCounts(), { in_sync: 1400, missing: 300, different: 300, extra: 0 });
  const inDom = await page.$$eval('#reg-table tbody tr.vrow', (r) => r.length);
  assert.ok(inDom < 100, `only the visible rows are in the DOM, not ${inDom}`);
  await measure('filter to tags containing "99"', () => page.fill('#reg-filter-tag', '99'), () => document.querySelector('#reg-shown')?.textContent.startsWith('38 of 2000'));
  await page.fill('#reg-filter-tag', '');
  await measure('hide in-sync rows', () => page.click('.count[data-rstatus="in_sync"]'), () => document.querySelector('#reg-shown')?.textContent.startsWith('600 of 2000'));
  await measure('only different rows', () => page.click('.count[data-rstatus="missing"]'), () => document.querySelector('#reg-shown')?.textContent.startsWith('300 of 2000'));
  await page.click('.count[data-rstatus="in_sync"]');
  await page.click('.count[data-rstatus="missing"]');
  await measure('all rows again', () => page.fill('#reg-filter-repo', 'perf'), () => document.querySelector('#reg-shown')?.textContent.startsWith('2000 of 2000'));
  await measure('scroll to the end', () => page.$eval('#reg-scroll', (s) => s.scrollTo(0, s.scrollHeight)), () => Boolean(document.querySelector('#reg-table tr[data-tag="t1999"]')));
  assert.ok((await page.$$eval('#reg-table tbody tr.vrow', (r) => r.length)) < 100, 'still only the visible rows after scrolling');
  await page.fill('#reg-filter-repo', '');
  const byMethod = {};
  for (const request of counter.requests) byMethod[request.split(' ')[0]] = (byMethod[request.split(' ')[0]] ?? 0) + 1;
  figures.push(`requests to the source: ${Object.entries(byMethod).map(([method, n]) => `${n} ${method}`).join(', ')}`);
  for (const line of figures) console.log(`2,000-tag repository: ${line}`);
});

/** `work(item)` for every item, 16 at a time. */
async function inBatches(items, work) {
  for (let i = 0; i < items.length; i += 16) await Promise.all(items.slice(i, i + 16).map(work));
}
