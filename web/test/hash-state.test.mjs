// The URL hash round-trips, and registry fields parse the way people type them.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { STATUSES, formatHash, parseHash, parseLocation, parseRegistry } from '../hash-state.js';

test('registry fields: scheme defaults, paths become the repository, bad input names the fix', () => {
  const cases = [
    ['http://127.0.0.1:5000', { registry: 'http://127.0.0.1:5000', repository: '' }],
    ['127.0.0.1:5000/', { registry: 'http://127.0.0.1:5000', repository: '' }],
    ['localhost:5001/library/app', { registry: 'http://localhost:5001', repository: 'library/app' }],
    ['registry.example.com/team/app/', { registry: 'https://registry.example.com', repository: 'team/app' }],
    ['https://r.example/v2/library/app', { registry: 'https://r.example', repository: 'library/app' }],
    ['  HTTP://R.Example:443 ', { registry: 'http://r.example:443', repository: '' }],
  ];
  for (const [text, want] of cases) assert.deepEqual(parseRegistry(text), want, text);
  const bad = [
    ['', /Enter the registry URL/],
    ['ftp://host', /not an http:\/\/ or https:\/\/ URL/],
    ['http://user:pw@host', /Credentials section/],
    ['http://host/?x=1', /query or a fragment/],
    ['http://[bad', /not a URL/],
  ];
  for (const [text, message] of bad) {
    assert.throws(() => parseRegistry(text, 'src-registry'), (e) => e.name === 'InputProblem' && e.field === 'src-registry' && message.test(e.message), text);
  }
});

test('repositories follow the distribution grammar', () => {
  assert.deepEqual(parseLocation('http://h:1/library/app'), { registry: 'http://h:1', repository: 'library/app' });
  for (const text of ['http://h:1/', 'http://h:1/Library/App', 'http://h:1/a//b', 'http://h:1/-a']) {
    assert.throws(() => parseLocation(text, 'dst'), (e) => e.field === 'dst', text);
  }
});

test('the hash round-trips and stays readable', () => {
  const cases = [
    [
      { src: 'http://127.0.0.1:5000/library/app', dst: 'http://127.0.0.1:5001/library/app', statuses: new Set(STATUSES), q: '' },
      '#src=http://127.0.0.1:5000/library/app&dst=http://127.0.0.1:5001/library/app',
    ],
    [
      { src: 'https://a.example/x', dst: 'https://b.example/y', statuses: new Set(['missing', 'different']), q: '1.0 rc&x' },
      '#src=https://a.example/x&dst=https://b.example/y&status=missing,different&q=1.0%20rc%26x',
    ],
    [{ src: '', dst: '', statuses: new Set(), q: '' }, '#status='],
    [{ src: '', dst: '', statuses: new Set(STATUSES), q: '' }, ''],
  ];
  for (const [state, hash] of cases) {
    assert.equal(formatHash(state), hash);
    assert.deepEqual(parseHash(hash), state, hash);
  }
  assert.deepEqual([...parseHash('#status=extra,bogus').statuses], ['extra']);
  assert.equal(parseHash('#q=%E0%A4%A').q, '%E0%A4%A');
});
