// The page's end-to-end harness, shared by every Chromium test file: two `ferry serve`
// registries with CORS for the page's origin (the source also serves the page), the
// system Chromium in a throwaway profile, and one list of cleanups run in reverse.
//
// The page's origin is `localhost`, while the registries are named by `127.0.0.1`, so
// both are cross-origin to the page and both need CORS, though one serves the page.

import { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { chromium } from 'playwright-core';

import { ROOT, freePort, startFerry } from './registries.mjs';

const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const AXE = createRequire(import.meta.url).resolve('axe-core/axe.min.js');

/** Screenshots go here. */
export const ARTIFACTS = join(ROOT, 'target/web-e2e');

/**
 * Registers the file's `before` and `after` hooks and returns the harness, whose fields
 * are set once `ready` resolved (await it in the file's own `before`): `page`, `context`,
 * `origin`, `source`, `destination`, and `cleanup(fn)` to run `fn` after the file's tests
 * (last registered, first run).
 */
export function pageHarness() {
  const cleanups = [];
  let started;
  const h = {
    ready: new Promise((resolve, reject) => {
      started = { resolve, reject };
    }),
    page: null,
    context: null,
    origin: '',
    source: null,
    destination: null,
    cleanup(fn) {
      cleanups.push(fn);
    },
  };
  before(() => start().then(started.resolve, (error) => {
    started.reject(error);
    throw error;
  }));
  async function start() {
    assert.ok(existsSync(join(ROOT, 'web/pkg/ferry_wasm.js')), 'web/pkg/ferry_wasm.js is missing: run scripts/build-wasm.sh (or just test-web)');
    const port = await freePort();
    h.origin = `http://localhost:${port}`;
    h.source = await startFerry(['--storage', 'memory', '--ui', join(ROOT, 'web'), '--cors-origin', h.origin], { addr: `127.0.0.1:${port}` });
    h.cleanup(() => h.source.stop());
    h.destination = await startFerry(['--storage', 'memory', '--cors-origin', h.origin]);
    h.cleanup(() => h.destination.stop());
    const profile = mkdtempSync(join(tmpdir(), 'ferry-web-chromium-'));
    h.context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, viewport: { width: 1280, height: 860 } });
    h.cleanup(async () => {
      await h.context.close();
      rmSync(profile, { recursive: true, force: true });
    });
    h.page = h.context.pages()[0] ?? (await h.context.newPage());
    h.page.on('pageerror', (e) => console.log(`page error: ${e.message}`));
  }
  after(async () => {
    for (const fn of cleanups.reverse()) await fn();
  });
  return h;
}

/** axe-core's serious and critical violations of `page` as it is now, as readable lines. */
export async function axeProblems(page, state) {
  if (!(await page.evaluate(() => 'axe' in window))) await page.addScriptTag({ path: AXE });
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${state}: ${v.impact} ${v.id} (${v.help}) at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
}
