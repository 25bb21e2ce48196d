// The CORS diagnosis names the registry, the missing header or preflight answer, and the
// fix for both ferry serve and distribution.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { NEEDED, PREFLIGHTS, diagnose, isDockerHub } from '../cors.js';

const REGISTRY = 'http://127.0.0.1:5001';
const ORIGIN = 'http://127.0.0.1:5000';

function findings(overrides) {
  return {
    registry: REGISTRY,
    pageOrigin: ORIGIN,
    dockerHub: false,
    mixedContent: false,
    reachable: true,
    simple: { ok: true, status: 200 },
    preflights: PREFLIGHTS.map((p) => ({ need: p.need, kind: p.kind, ok: true })),
    exposed: { 'Docker-Content-Digest': true, Link: null, Location: null, Range: null },
    ...overrides,
  };
}

const failing = (...needs) => PREFLIGHTS.map((p) => ({ need: p.need, kind: p.kind, ok: !needs.includes(p.need) }));

test('each failure gets its verdict, its words and its fix', () => {
  // [name, findings, verdict, words the title or problems must contain, fixes shown]
  const cases = [
    ['docker hub', { registry: 'https://registry-1.docker.io', dockerHub: true }, 'docker_hub', ['Docker Hub', 'no CORS headers at all', 'cannot use it directly'], false],
    ['mixed content', { registry: 'http://r.example', pageOrigin: 'https://page.example', mixedContent: true }, 'mixed_content', ['mixed content'], false],
    ['down', { reachable: false }, 'unreachable', ['did not answer at all', `GET ${REGISTRY}/v2/`], false],
    ['no allow-origin', { simple: { ok: false, error: 'Failed to fetch' } }, 'no_allow_origin', [REGISTRY, `Access-Control-Allow-Origin: ${ORIGIN}`], true],
    ['preflight 401', { simple: { ok: true, status: 401 }, preflights: failing(...PREFLIGHTS.map((p) => p.need)) }, 'preflight', ['preflight (OPTIONS)', 'answered 401', 'ferry serve, which answers preflights before auth'], true],
    ['preflight unanswered', { preflights: failing(...PREFLIGHTS.map((p) => p.need)) }, 'preflight', ['-Allow-Methods and -Allow-Headers'], true],
    ['methods and headers', { preflights: failing('PATCH', 'Content-Range') }, 'preflight', ['Access-Control-Allow-Methods lacks PATCH.', 'Access-Control-Allow-Headers lacks Content-Range.'], true],
    ['hidden digest', { exposed: { 'Docker-Content-Digest': false, Link: null, Location: null, Range: null } }, 'expose', ['Access-Control-Expose-Headers lacks Docker-Content-Digest.'], true],
    ['fine', {}, 'ok', ['allows this page', 'Link, Location, Range'], false],
  ];
  for (const [name, overrides, verdict, words, fixes] of cases) {
    const d = diagnose(findings(overrides), 'destination');
    assert.equal(d.verdict, verdict, name);
    assert.equal(d.side, 'destination', name);
    const text = [d.title, ...d.problems, d.note].join('\n');
    assert.ok(text.includes(d.registry), `${name}: names the registry\n${text}`);
    for (const w of words) assert.ok(text.includes(w), `${name}: "${w}" in\n${text}`);
    assert.equal(Boolean(d.fixes), fixes, name);
  }
});

test('the fixes are the exact config for this origin', () => {
  const d = diagnose(findings({ simple: { ok: false } }), 'source');
  assert.equal(d.fixes.ferry.split('\n')[0], `ferry serve --cors-origin ${ORIGIN}`);
  assert.ok(d.fixes.ferry.includes(`cors: { origins: ["${ORIGIN}"] }`));
  const yaml = d.fixes.distribution;
  assert.ok(yaml.includes(`http:\n  headers:\n    Access-Control-Allow-Origin: ["${ORIGIN}"]\n`), yaml);
  for (const [key, values] of [
    ['Access-Control-Allow-Methods', NEEDED.methods],
    ['Access-Control-Allow-Headers', NEEDED.headers],
    ['Access-Control-Expose-Headers', NEEDED.expose],
  ]) {
    assert.ok(yaml.includes(`    ${key}: [${values.map((v) => `"${v}"`).join(', ')}]`), `${key} in\n${yaml}`);
  }
  for (const header of ['Docker-Content-Digest', 'Link', 'Location', 'Range']) assert.ok(NEEDED.expose.includes(header), header);
});

test('Docker Hub is recognised by host', () => {
  const cases = [
    ['https://registry-1.docker.io', true],
    ['https://index.docker.io', true],
    ['https://DOCKER.IO', true],
    ['https://ghcr.io', false],
    ['not a url', false],
  ];
  for (const [url, want] of cases) assert.equal(isDockerHub(url), want, url);
});
