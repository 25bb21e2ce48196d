// ferry's web page: compare two repositories tag by tag and copy what the destination
// lacks, with ferry-wasm (web/pkg/, built by scripts/build-wasm.sh) doing every registry call from
// this tab. State that can be shared lives in the URL hash (hash-state.js); credentials
// live in the form fields only.

import { InputProblem, STATUSES, checkRepository, formatHash, formatLocation, parseHash, parseRegistry } from './hash-state.js';
import { COPY_STATUSES, copyableTags, counts, filterRows, renderOutcome, renderRows } from './diff-table.js';
import { CopyProgress } from './copy-progress.js';
import { diagnose, probe } from './cors.js';
import { renderDiagnosis } from './diagnosis-view.js';
import { describeFailure } from './failure.js';
import { formatBytes, formatRate } from './format.js';

const $ = (selector) => document.querySelector(selector);

const ui = {
  form: $('#compare-form'),
  compare: $('#compare'),
  checkCors: $('#check-cors'),
  swap: $('#swap'),
  message: $('#message'),
  diagnosis: $('#diagnosis'),
  results: $('#results'),
  tbody: $('#diff-table tbody'),
  selectAll: $('#select-all'),
  empty: $('#empty'),
  filter: $('#filter'),
  counts: [...document.querySelectorAll('.count[data-status]')],
  copySelected: $('#copy-selected'),
  copyMissing: $('#copy-missing'),
  progress: $('#progress'),
  overallBar: $('#overall-bar'),
  overallText: $('#overall-text'),
  cancel: $('#cancel'),
  reportErrors: $('#report-errors'),
  version: $('#version'),
};

const SIDES = { src: 'source', dst: 'destination' };

const state = {
  statuses: new Set(STATUSES),
  q: '',
  /** The last diff: ferry-wasm's `diff` result. */
  report: null,
  /** `{src, dst}`: the repositories the table shows, as `{registry, repository}`. */
  compared: null,
  selected: new Set(),
  /** Tag -> how its last copy ended (`{state, done, total, reason}`). */
  outcomes: new Map(),
  /** While a copy runs: `{progress, controller}`. */
  copy: null,
  diffing: false,
};

// ------------------------------------------------------------------ ferry-wasm

const WASM_MISSING =
  'ferry-wasm did not load from ./pkg/ferry_wasm.js. Build it with scripts/build-wasm.sh, then reload this page.';

const ferryReady = import('./pkg/ferry_wasm.js').then(async (ferry) => {
  await ferry.default();
  ui.version.textContent = `ferry-wasm ${ferry.version()}`;
  return ferry;
});
ferryReady.catch(() => showMessage('error', WASM_MISSING));

/** The loaded module, or null after saying why it is missing. */
async function loadedFerry() {
  try {
    return await ferryReady;
  } catch {
    showMessage('error', WASM_MISSING);
    return null;
  }
}

// ------------------------------------------------------------------ messages

function showMessage(kind, text) {
  ui.message.className = `message message-${kind}`;
  ui.message.textContent = text;
  ui.message.hidden = false;
}

function hideMessage() {
  ui.message.hidden = true;
  ui.message.textContent = '';
}

function clearDiagnosis() {
  ui.diagnosis.replaceChildren();
  ui.diagnosis.hidden = true;
}

// ------------------------------------------------------------------ the form

function field(id) {
  return document.getElementById(id);
}

/** `{registry, repository}` of one side, or throws an InputProblem naming the field. */
function readSide(prefix) {
  const { registry, repository: inUrl } = parseRegistry(field(`${prefix}-registry`).value, `${prefix}-registry`);
  const typed = field(`${prefix}-repository`).value.trim();
  const repository = checkRepository(typed || inUrl, `${prefix}-repository`);
  return { registry, repository };
}

/** The side's credentials, for the call only: never stored, never in the hash. */
function withAuth(side, prefix) {
  const kind = field(`${prefix}-auth-kind`).value;
  if (kind === 'basic') {
    const username = field(`${prefix}-username`).value;
    const password = field(`${prefix}-password`).value;
    if (username || password) return { ...side, auth: { username, password } };
  }
  if (kind === 'token') {
    const token = field(`${prefix}-token`).value.trim();
    if (token) return { ...side, auth: { token } };
  }
  return { ...side };
}

function fillSide(prefix, text) {
  try {
    const { registry, repository } = parseRegistry(text);
    field(`${prefix}-registry`).value = registry;
    field(`${prefix}-repository`).value = repository;
  } catch {
    field(`${prefix}-registry`).value = text;
  }
}

function markInvalid(problem) {
  for (const input of ui.form.querySelectorAll('[aria-invalid]')) input.removeAttribute('aria-invalid');
  if (!problem) return;
  const input = field(problem.field);
  input?.setAttribute('aria-invalid', 'true');
  input?.focus();
  showMessage('error', `${input?.labels?.[0]?.textContent ?? 'Field'} (${SIDES[problem.field.split('-')[0]]}): ${problem.message}`);
}

function readBothSides() {
  try {
    const sides = { src: readSide('src'), dst: readSide('dst') };
    markInvalid(null);
    return sides;
  } catch (error) {
    if (error instanceof InputProblem) {
      markInvalid(error);
      return null;
    }
    throw error;
  }
}

function sameSides(a, b) {
  return Boolean(a && b) && formatLocation(a.src) === formatLocation(b.src) && formatLocation(a.dst) === formatLocation(b.dst);
}

// ------------------------------------------------------------------ the hash

function writeHash() {
  const hash = formatHash({
    src: state.compared ? formatLocation(state.compared.src) : '',
    dst: state.compared ? formatLocation(state.compared.dst) : '',
    statuses: state.statuses,
    q: state.q,
  });
  history.replaceState(null, '', hash || `${location.pathname}${location.search}`);
}

/** Applies the hash; runs the diff when it names two repositories not compared yet. */
function applyHash() {
  const wanted = parseHash(location.hash);
  state.statuses = wanted.statuses;
  state.q = wanted.q;
  ui.filter.value = wanted.q;
  if (wanted.src) fillSide('src', wanted.src);
  if (wanted.dst) fillSide('dst', wanted.dst);
  renderResults();
  if (wanted.src && wanted.dst && !state.copy) {
    const sides = readBothSides();
    if (sides && !sameSides(sides, state.compared)) runDiff();
  }
}

// ------------------------------------------------------------------ CORS diagnosis

function sideOf(registry, sides) {
  if (sides.src.registry === registry) return 'source';
  if (sides.dst.registry === registry) return 'destination';
  return 'registry';
}

async function diagnoseRegistry(registry, side, repository) {
  const findings = await probe(registry, { repository, pageOrigin: location.origin });
  return diagnose(findings, side);
}

/**
 * Probes both registries; shows what is wrong (and, when `showOk`, what is right).
 * Returns the diagnoses shown.
 */
async function checkRegistries(sides, { showOk }) {
  const targets = [['source', sides.src]];
  if (sides.dst.registry !== sides.src.registry) targets.push(['destination', sides.dst]);
  const diagnoses = await Promise.all(targets.map(([side, s]) => diagnoseRegistry(s.registry, side, s.repository)));
  const shown = diagnoses.filter((d) => showOk || d.verdict !== 'ok');
  for (const d of shown) renderDiagnosis(ui.diagnosis, d);
  return shown;
}

/** A rejected call: one line for the user; a CORS diagnosis when `fetch` itself failed. */
async function explainFailure(error, sides, what) {
  showMessage('error', `${what} failed: ${describeFailure(error?.kind, error?.message ?? String(error))}`);
  if (error?.name !== 'NetworkError') return;
  if (error.registry) {
    const side = sideOf(error.registry, sides);
    const repository = side === 'destination' ? sides.dst.repository : sides.src.repository;
    renderDiagnosis(ui.diagnosis, await diagnoseRegistry(error.registry, side, repository));
  } else {
    await checkRegistries(sides, { showOk: false });
  }
}

// ------------------------------------------------------------------ the table

function outcomes() {
  return { get: (tag) => state.copy?.progress.row(tag) ?? state.outcomes.get(tag) };
}

function visibleRows() {
  return state.report ? filterRows(state.report.rows, state.statuses, state.q) : [];
}

function renderResults() {
  for (const button of ui.counts) button.setAttribute('aria-pressed', String(state.statuses.has(button.dataset.status)));
  const report = state.report;
  if (!report) return;
  ui.results.hidden = false;
  const n = counts(report);
  for (const [status, count] of Object.entries(n)) ui.results.querySelector(`[data-count="${status}"]`).textContent = count;
  const rows = visibleRows();
  renderRows(ui.tbody, rows, { selected: state.selected, outcomes: outcomes(), busy: Boolean(state.copy) });
  ui.empty.hidden = rows.length > 0;
  ui.reportErrors.hidden = report.errors.length === 0;
  ui.reportErrors.textContent = report.errors.length ? `Some calls failed, so the table may be incomplete: ${report.errors.map((e) => describeFailure(e.kind, e.message)).join('; ')}` : '';
  updateActions();
}

function missingTags() {
  return (state.report?.rows ?? []).filter((row) => COPY_STATUSES.has(row.status)).map((row) => row.tag);
}

function updateActions() {
  const busy = Boolean(state.copy) || state.diffing;
  const missing = missingTags();
  ui.copyMissing.querySelector('[data-n]').textContent = missing.length;
  ui.copyMissing.disabled = busy || missing.length === 0;
  ui.copySelected.querySelector('[data-n]').textContent = state.selected.size;
  ui.copySelected.disabled = busy || state.selected.size === 0;
  ui.compare.disabled = Boolean(state.copy);
  const visible = copyableTags(visibleRows());
  const ticked = visible.filter((tag) => state.selected.has(tag)).length;
  ui.selectAll.checked = visible.length > 0 && ticked === visible.length;
  ui.selectAll.indeterminate = ticked > 0 && ticked < visible.length;
  ui.selectAll.disabled = Boolean(state.copy) || visible.length === 0;
}

// ------------------------------------------------------------------ diff

async function runDiff({ keepOutcomes = false } = {}) {
  if (state.diffing) return;
  const sides = readBothSides();
  if (!sides) return;
  if (!keepOutcomes && !sameSides(sides, state.compared)) {
    state.outcomes.clear();
    state.selected.clear();
    state.report = null;
    ui.results.hidden = true;
  }
  state.compared = sides;
  writeHash();
  clearDiagnosis();
  showMessage('busy', `Comparing ${formatLocation(sides.src)} with ${formatLocation(sides.dst)}…`);
  state.diffing = true;
  updateActions();
  ui.results.setAttribute('aria-busy', 'true');
  try {
    const ferry = await loadedFerry();
    if (ferry) {
      const report = await ferry.diff(withAuth(sides.src, 'src'), withAuth(sides.dst, 'dst'), { details: true, referrers: true });
      state.report = report;
      hideMessage();
      if (report.errors.length) await checkRegistries(sides, { showOk: false });
    }
  } catch (error) {
    await explainFailure(error, sides, 'Comparing');
  } finally {
    state.diffing = false;
    ui.results.removeAttribute('aria-busy');
    renderResults();
  }
}

// ------------------------------------------------------------------ copy

function updateRowOutcome(tag) {
  const row = ui.tbody.querySelector(`tr[data-tag="${CSS.escape(tag)}"] [data-cell="outcome"]`);
  if (row) renderOutcome(row, outcomes().get(tag));
}

function overallText(totals, ended) {
  const { counts: c, images, done, total, streamed, elapsedMs } = totals;
  const finished = c.copied + c.skipped + c.failed + c.cancelled;
  const rate = formatRate(streamed, elapsedMs);
  const seconds = (elapsedMs / 1000).toFixed(1);
  if (!ended) {
    return `${finished} of ${images} image(s) · ${formatBytes(done)} of ${formatBytes(total)}${rate ? ` · ${rate}` : ''}`;
  }
  const parts = [`copied ${c.copied}`, `skipped ${c.skipped}`, `failed ${c.failed}`];
  if (c.cancelled) parts.push(`cancelled ${c.cancelled}`);
  return `${ended}: ${parts.join(', ')} of ${images} image(s) in ${seconds} s · ${formatBytes(streamed)} streamed${rate ? ` (${rate})` : ''}`;
}

function updateOverall(progress, ended) {
  const totals = progress.overall();
  ui.overallBar.max = Math.max(totals.total, 1);
  ui.overallBar.value = ended ? ui.overallBar.max : totals.done;
  ui.overallText.textContent = overallText(totals, ended);
}

async function runCopy(tags) {
  if (!tags.length || state.copy || !state.compared) return;
  const sides = state.compared;
  const ferry = await loadedFerry();
  if (!ferry) return;
  const sizes = new Map(state.report.rows.map((row) => [row.tag, row.size]));
  const progress = new CopyProgress(tags.map((tag) => ({ tag, size: sizes.get(tag) })), performance.now());
  const controller = new AbortController();
  state.copy = { progress, controller };
  clearDiagnosis();
  hideMessage();
  ui.progress.hidden = false;
  delete ui.progress.dataset.state;
  ui.cancel.hidden = false;
  ui.cancel.disabled = false;
  updateOverall(progress, '');
  renderResults();

  const changed = new Set();
  let frame = 0;
  const flush = () => {
    frame = 0;
    for (const tag of changed) updateRowOutcome(tag);
    changed.clear();
    updateOverall(progress, '');
  };
  const onProgress = (event) => {
    const tag = progress.handle(event, performance.now());
    if (tag != null) changed.add(tag);
    if (!frame) frame = requestAnimationFrame(flush);
  };

  let ended = 'Done';
  let failure = null;
  try {
    const report = await ferry.copy(withAuth(sides.src, 'src'), withAuth(sides.dst, 'dst'), {
      tags,
      onProgress,
      signal: controller.signal,
    });
    progress.applyReport(report);
    progress.finishRemaining('failed', 'the job ended without an outcome for this image');
    if (report.status === 'failed') ended = 'Finished with failures';
  } catch (error) {
    if (error?.name === 'AbortError') {
      ended = 'Cancelled';
      progress.finishRemaining('cancelled');
    } else {
      ended = 'Failed';
      failure = error;
      // A NetworkError carries the job's report so far: images that made it stay copied.
      if (error?.report) progress.applyReport(error.report);
      progress.finishRemaining('failed', error?.message ?? String(error));
    }
  }
  if (frame) cancelAnimationFrame(frame);
  progress.tick(performance.now());
  for (const tag of tags) state.outcomes.set(tag, progress.row(tag));
  for (const tag of tags) state.selected.delete(tag);
  state.copy = null;
  ui.cancel.hidden = true;
  updateOverall(progress, ended);
  ui.progress.dataset.state = ended.toLowerCase();
  if (failure) await explainFailure(failure, sides, 'Copying');
  const message = ui.message.hidden ? null : [ui.message.className, ui.message.textContent];
  await runDiff({ keepOutcomes: true });
  if (message && ui.message.hidden) {
    ui.message.className = message[0];
    ui.message.textContent = message[1];
    ui.message.hidden = false;
  }
  if (ended === 'Cancelled') {
    progress.settleCancelled(state.report);
    for (const tag of tags) state.outcomes.set(tag, progress.row(tag));
    updateOverall(progress, ended);
    renderResults();
  }
}

// ------------------------------------------------------------------ clipboard

async function copyText(button) {
  const text = button.dataset.copy;
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // No clipboard (an insecure origin): select the text so Ctrl-C takes it.
    const range = document.createRange();
    range.selectNodeContents(button.closest('.snippet-wrap')?.querySelector('pre') ?? button);
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    return;
  }
  button.classList.add('copied');
  setTimeout(() => button.classList.remove('copied'), 1200);
}

// ------------------------------------------------------------------ wiring

ui.form.addEventListener('submit', (event) => {
  event.preventDefault();
  if (!state.copy) runDiff();
});

for (const prefix of Object.keys(SIDES)) {
  // A whole `host/repository` pasted into the registry field fills both fields.
  field(`${prefix}-registry`).addEventListener('change', (event) => {
    try {
      const { registry, repository } = parseRegistry(event.target.value);
      if (repository) {
        event.target.value = registry;
        field(`${prefix}-repository`).value = repository;
      }
    } catch {
      // Reported when the form is submitted.
    }
  });
  const kind = field(`${prefix}-auth-kind`);
  kind.addEventListener('change', () => {
    for (const group of kind.closest('details').querySelectorAll('[data-auth]')) group.hidden = group.dataset.auth !== kind.value;
  });
}

ui.swap.addEventListener('click', () => {
  for (const name of ['registry', 'repository', 'auth-kind', 'username', 'password', 'token']) {
    const a = field(`src-${name}`);
    const b = field(`dst-${name}`);
    [a.value, b.value] = [b.value, a.value];
  }
  for (const prefix of Object.keys(SIDES)) field(`${prefix}-auth-kind`).dispatchEvent(new Event('change'));
});

ui.checkCors.addEventListener('click', async () => {
  const sides = readBothSides();
  if (!sides) return;
  clearDiagnosis();
  showMessage('busy', 'Checking CORS on both registries…');
  ui.checkCors.disabled = true;
  try {
    await checkRegistries(sides, { showOk: true });
    hideMessage();
  } finally {
    ui.checkCors.disabled = false;
  }
});

for (const button of ui.counts) {
  button.addEventListener('click', () => {
    const status = button.dataset.status;
    if (state.statuses.has(status)) state.statuses.delete(status);
    else state.statuses.add(status);
    writeHash();
    renderResults();
  });
}

ui.filter.addEventListener('input', () => {
  state.q = ui.filter.value;
  writeHash();
  renderResults();
});

ui.tbody.addEventListener('change', (event) => {
  const box = event.target.closest('.select-row');
  if (!box) return;
  if (box.checked) state.selected.add(box.dataset.tag);
  else state.selected.delete(box.dataset.tag);
  updateActions();
});

ui.selectAll.addEventListener('change', () => {
  for (const tag of copyableTags(visibleRows())) {
    if (ui.selectAll.checked) state.selected.add(tag);
    else state.selected.delete(tag);
  }
  renderResults();
});

document.addEventListener('click', (event) => {
  const button = event.target.closest('[data-copy]');
  if (button) copyText(button);
});

ui.copyMissing.addEventListener('click', () => runCopy(missingTags()));
ui.copySelected.addEventListener('click', () => runCopy([...state.selected]));
ui.cancel.addEventListener('click', () => {
  if (!state.copy) return;
  ui.cancel.disabled = true;
  ui.overallText.textContent = 'Cancelling: stopping new work and aborting requests in flight…';
  state.copy.controller.abort();
});

window.addEventListener('hashchange', applyHash);
applyHash();
