// The table's filters: status toggles and a tag text filter; only source tags can be copied.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { copyableTags, counts, filterRows, referrerCounts } from '../diff-table.js';

const D = (c) => `sha256:${c.repeat(64)}`;
const ROWS = [
  { repository: 'library/app', tag: '0.9', status: 'extra', source_digest: null, destination_digest: D('9') },
  { repository: 'library/app', tag: '1.0', status: 'in_sync', source_digest: D('a'), destination_digest: D('a') },
  { repository: 'library/app', tag: '1.1', status: 'different', source_digest: D('b'), destination_digest: D('c') },
  { repository: 'library/app', tag: '2.0', status: 'missing', source_digest: D('d'), destination_digest: null },
  { repository: 'library/app', tag: 'latest', status: 'missing', source_digest: D('a'), destination_digest: null },
];

test('filters by status and text', () => {
  const all = new Set(['in_sync', 'missing', 'different', 'extra']);
  const cases = [
    [all, '', ['0.9', '1.0', '1.1', '2.0', 'latest']],
    [new Set(['missing', 'different']), '', ['1.1', '2.0', 'latest']],
    [all, '1.', ['1.0', '1.1']],
    [all, ' LAT ', ['latest']],
    [new Set(['extra']), '1', []],
    [new Set(), '', []],
  ];
  for (const [statuses, q, want] of cases) {
    assert.deepEqual(filterRows(ROWS, statuses, q).map((r) => r.tag), want, `${[...statuses]} "${q}"`);
  }
});

test('extra tags cannot be copied; counts come from the report', () => {
  assert.deepEqual(copyableTags(ROWS), ['1.0', '1.1', '2.0', 'latest']);
  assert.deepEqual(counts({ in_sync: 1, missing: 2, different: 1, extra: 1 }), { in_sync: 1, missing: 2, different: 1, extra: 1 });
  assert.deepEqual(counts(null), { in_sync: 0, missing: 0, different: 0, extra: 0 });
});

test('a row counts its referrers and those the destination lacks', () => {
  const row = {
    tag: '1.0',
    referrers: [
      { artifact_type: 'application/spdx+json', status: 'in_sync' },
      { artifact_type: 'cosign sig', status: 'missing' },
      { artifact_type: 'x/y', status: 'extra' },
    ],
  };
  assert.deepEqual(referrerCounts(row), { total: 3, missing: 1 });
  assert.deepEqual(referrerCounts({ tag: '2.0' }), { total: 0, missing: 0 });
});
