// The registry-wide view's pure parts: which repositories, the catalog's Link paging,
// rows and filters, the hash, and the virtual table's window arithmetic.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { STATUSES } from '../hash-state.js';
import {
  EventRouter,
  chooseRepositories,
  filterWideRows,
  formatWideHash,
  listCatalog,
  missingByRepository,
  nextLink,
  parseWideHash,
  parseWideRegistry,
  repositoryOfReference,
  repositoryRows,
  rowsByRepository,
  underPrefix,
  wideCounts,
  withoutKeys,
} from '../registry-wide.js';
import { visibleWindow } from '../virtual-rows.js';

test('repositories: both catalogs, a prefix, or a typed list', () => {
  const source = ['team/a', 'team/b', 'tools/x'];
  const destination = ['team/b', 'team/c', 'teams/d'];
  const cases = [
    [{ source, destination }, ['team/a', 'team/b', 'team/c', 'teams/d', 'tools/x']],
    [{ source, destination, prefix: 'team' }, ['team/a', 'team/b', 'team/c']],
    [{ source, destination, prefix: '/team/' }, ['team/a', 'team/b', 'team/c']],
    [{ source, destination, list: 'tools/x, team/a\nother' }, ['other', 'team/a', 'tools/x']],
    [{ source, destination, list: 'tools/x team/a', prefix: 'team' }, ['team/a']],
    [{ source: [], destination: [] }, []],
  ];
  for (const [input, want] of cases) assert.deepEqual(chooseRepositories(input), want, JSON.stringify(input));
  assert.throws(() => chooseRepositories({ list: 'Team/A' }), /not a repository name/);
});

test('the catalog follows Link headers and names the registry when refused', async () => {
  assert.equal(nextLink('</v2/_catalog?last=b&n=2>; rel="next"', 'http://r:5000/v2/_catalog?n=2'), 'http://r:5000/v2/_catalog?last=b&n=2');
  assert.equal(nextLink(null, 'http://r'), null);
  assert.equal(nextLink('<http://r/x>; rel="prev"', 'http://r'), null);
  const pages = {
    'http://r/v2/_catalog?n=1000': { repositories: ['b', 'a'], link: '</v2/_catalog?last=b&n=1000>; rel="next"' },
    'http://r/v2/_catalog?last=b&n=1000': { repositories: ['c'] },
  };
  const seen = [];
  const fakeFetch = async (url, init) => {
    seen.push(init.headers.Authorization ?? '');
    const page = pages[url];
    return { ok: true, status: 200, json: async () => ({ repositories: page.repositories }), headers: { get: () => page.link ?? null } };
  };
  assert.deepEqual(await listCatalog('http://r', { fetch: fakeFetch, auth: { username: 'u', password: 'p' } }), ['a', 'b', 'c']);
  assert.deepEqual(seen, [`Basic ${btoa('u:p')}`, `Basic ${btoa('u:p')}`]);
  const refused = async () => ({ ok: false, status: 401, headers: { get: () => null } });
  await assert.rejects(listCatalog('http://r', { fetch: refused }), /http:\/\/r refused its catalog \(GET \/v2\/_catalog: HTTP 401\); list the repositories instead/);
});

test('rows, filters, counts and what to copy', () => {
  const rows = [
    ...repositoryRows('team/a', { rows: [{ tag: '1', status: 'missing' }, { tag: '2', status: 'in_sync' }] }),
    ...repositoryRows('tools/x', { rows: [{ tag: '1', status: 'different' }, { tag: '9', status: 'extra' }] }),
  ];
  assert.deepEqual(rows.map((r) => r.key), ['team/a:1', 'team/a:2', 'tools/x:1', 'tools/x:9']);
  const all = new Set(STATUSES);
  const keys = (f) => filterWideRows(rows, f).map((r) => r.key);
  assert.deepEqual(keys({ statuses: all, repo: 'TOOLS', q: '' }), ['tools/x:1', 'tools/x:9']);
  assert.deepEqual(keys({ statuses: all, repo: '', q: '1' }), ['team/a:1', 'tools/x:1']);
  assert.deepEqual(keys({ statuses: new Set(['missing', 'different']), repo: '', q: '' }), ['team/a:1', 'tools/x:1']);
  assert.deepEqual(wideCounts(rows), { in_sync: 1, missing: 1, different: 1, extra: 1 });
  assert.deepEqual([...missingByRepository(rows)], [['team/a', ['1']], ['tools/x', ['1']]]);
});

test('the hash round-trips and leaves the single-repository keys alone', () => {
  const state = { src: 'http://127.0.0.1:5000', dst: 'http://127.0.0.1:5001', prefix: 'team', repos: 'a,b/c', statuses: new Set(['missing']), repo: 'b', q: '1.' };
  const text = formatWideHash(state);
  assert.equal(text, 'rsrc=http://127.0.0.1:5000&rdst=http://127.0.0.1:5001&prefix=team&repos=a,b/c&rstatus=missing&rrepo=b&rq=1.');
  assert.deepEqual(parseWideHash(`#src=x&${text}`), state);
  assert.equal(formatWideHash({ statuses: new Set(STATUSES) }), '');
  assert.equal(withoutKeys(`#src=x&${text}&q=2`, ['rsrc', 'rdst', 'prefix', 'repos', 'rstatus', 'rrepo', 'rq']), 'src=x&q=2');
  assert.equal(parseWideRegistry('127.0.0.1:5000'), 'http://127.0.0.1:5000');
  assert.throws(() => parseWideRegistry('127.0.0.1:5000/team', 'reg-src'), /base URL only; put "team" in the prefix or the list/);
});

test('the virtual window covers the viewport plus overscan, within bounds', () => {
  const cases = [
    [{ scrollTop: 0, viewport: 360, rowHeight: 36, count: 2000, overscan: 5 }, { start: 0, end: 16 }],
    [{ scrollTop: 3600, viewport: 360, rowHeight: 36, count: 2000, overscan: 5 }, { start: 95, end: 116 }],
    [{ scrollTop: 72000, viewport: 360, rowHeight: 36, count: 2000, overscan: 5 }, { start: 1994, end: 2000 }],
    [{ scrollTop: 0, viewport: 360, rowHeight: 36, count: 3, overscan: 5 }, { start: 0, end: 3 }],
    [{ scrollTop: 50, viewport: 360, rowHeight: 36, count: 0 }, { start: 0, end: 0 }],
  ];
  for (const [input, want] of cases) assert.deepEqual(visibleWindow(input), want, JSON.stringify(input));
});

test("a relay's report by repository, under a prefix, and a copy job's events routed to their repository", () => {
  const report = {
    rows: [
      { repository: 'team/a', tag: '1', status: 'missing' },
      { repository: 'team/a', tag: '2', status: 'in_sync' },
      { repository: 'teams/b', tag: '1', status: 'extra' },
      { repository: 'team', tag: 'x', status: 'missing' },
    ],
  };
  const by = rowsByRepository(report, 'team');
  assert.deepEqual([...by.keys()], ['team/a', 'team']);
  assert.deepEqual(by.get('team/a').map((r) => r.key), ['team/a:1', 'team/a:2']);
  assert.deepEqual([...rowsByRepository(report).keys()], ['team/a', 'teams/b', 'team']);
  assert.ok(underPrefix('x/y', '') && underPrefix('x/y', '/x/') && !underPrefix('xy/z', 'x'));

  assert.equal(repositoryOfReference('127.0.0.1:5000/team/a:1.0'), 'team/a');
  assert.equal(repositoryOfReference('127.0.0.1:5000/team/a@sha256:abc'), 'team/a');
  assert.equal(repositoryOfReference('registry.example/app'), 'app');
  assert.equal(repositoryOfReference('nohost'), null);

  const router = new EventRouter();
  const events = [
    { event: 'image_started', image: 0, source: '127.0.0.1:1/team/a:1' },
    { event: 'image_started', image: 1, source: '127.0.0.1:1/tools/x:1' },
    { event: 'blob_progress', image: 1, digest: 'sha256:d', bytes: 3, total: 9 },
    { event: 'blob_done', image: 0, digest: 'sha256:e', size: 9, outcome: 'mounted' },
    { event: 'image_done', image: 1, source: '127.0.0.1:1/tools/x:1' },
    { event: 'job_finished', status: 'succeeded' },
  ];
  assert.deepEqual(events.map((e) => router.repositoryOf(e)), ['team/a', 'tools/x', 'tools/x', 'team/a', 'tools/x', null]);
});
