// The registry-wide view: compares every repository of two registries (or those under a
// prefix, or a typed list). Rows stream in as each repository's diff lands, the table
// renders only what is visible (virtual-rows.js), and "Copy all missing" copies every
// repository's missing and different tags with one overall progress. Its state shares
// the URL hash with the single-repository view (keys in registry-wide.js).
//
// Through a relay (relay-client.js) the whole selection is ONE diff job, whose
// `repository_diffed` lines fill the table as the relay compares each pair, and "Copy all
// missing" is ONE copy job of every image; directly, ferry-wasm diffs and copies
// repository by repository.

import { InputProblem, STATUSES } from './hash-state.js';
import { STATUS_LABELS } from './diff-table.js';
import { CopyProgress } from './copy-progress.js';
import { describeFailure } from './failure.js';
import { formatBytes, shortDigest } from './format.js';
import { VirtualRows } from './virtual-rows.js';
import {
  EventRouter,
  WIDE_KEYS,
  chooseRepositories,
  filterWideRows,
  formatWideHash,
  listCatalog,
  missingByRepository,
  parseList,
  parseWideHash,
  parseWideRegistry,
  repositoryOfReference,
  repositoryRows,
  rowsByRepository,
  underPrefix,
  wideCounts,
  withoutKeys,
} from './registry-wide.js';

/** Repositories diffed at once: enough to overlap round trips, few enough to stay polite. */
const DIFF_CONCURRENCY = 3;

const OUTCOME_LABELS = { queued: 'queued', copying: 'copying', copied: 'copied', skipped: 'skipped', failed: 'failed', cancelled: 'cancelled' };

/**
 * Wires the view. `loadedFerry()`: ferry-wasm, the relay's client, or null;
 * `withAuth(side, prefix)`: `side` with the credentials typed in the source (`src`) or
 * destination (`dst`) form.
 */
export function startRegistryView({ loadedFerry, withAuth }) {
  const $ = (selector) => document.querySelector(selector);
  const ui = {
    form: $('#registry-form'),
    src: $('#reg-src'),
    dst: $('#reg-dst'),
    prefix: $('#reg-prefix'),
    repos: $('#reg-repos'),
    compare: $('#reg-compare'),
    message: $('#reg-message'),
    results: $('#reg-results'),
    counts: [...document.querySelectorAll('.count[data-rstatus]')],
    filterRepo: $('#reg-filter-repo'),
    filterTag: $('#reg-filter-tag'),
    copyMissing: $('#reg-copy-missing'),
    progress: $('#reg-progress'),
    bar: $('#reg-bar'),
    overall: $('#reg-overall'),
    cancel: $('#reg-cancel'),
    scroll: $('#reg-scroll'),
    tbody: $('#reg-table tbody'),
    shown: $('#reg-shown'),
  };

  const state = {
    statuses: new Set(STATUSES),
    repo: '',
    q: '',
    /** `{src, dst, prefix, repos}` as compared (the registries' base URLs). */
    compared: null,
    /** Repositories in table order, and repository -> its rows once diffed. */
    order: [],
    byRepository: new Map(),
    failures: new Map(),
    /** Row key (`repository:tag`) -> `{state, reason}` of its last copy. */
    outcomes: new Map(),
    diffing: false,
    copy: null,
    frame: 0,
  };

  const table = new VirtualRows(ui.scroll, ui.tbody, renderRow);

  function say(kind, text) {
    ui.message.className = `message message-${kind}`;
    ui.message.textContent = text;
    ui.message.hidden = !text;
  }

  function allRows() {
    const rows = [];
    for (const repository of state.order) rows.push(...(state.byRepository.get(repository) ?? []));
    return rows;
  }

  function cell(tag, className, text, attrs = {}) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    node.textContent = text;
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    return node;
  }

  function digestCell(cellName, digest) {
    return digest ? cell('td', 'digest-cell', shortDigest(digest), { 'data-cell': cellName, 'data-digest': digest, title: digest }) : cell('td', 'digest-cell muted', '—', { 'data-cell': cellName });
  }

  function renderRow(row) {
    const tr = document.createElement('tr');
    tr.className = 'vrow';
    tr.dataset.repository = row.repository;
    tr.dataset.tag = row.tag;
    tr.dataset.status = row.status;
    const outcome = state.copy?.progress.get(row.repository)?.row(row.tag) ?? state.outcomes.get(row.key);
    const badge = cell('span', `badge badge-${row.status}`, STATUS_LABELS[row.status] ?? row.status);
    const status = cell('td', '', '', { 'data-cell': 'status' });
    status.append(badge);
    tr.append(
      cell('td', 'repo', row.repository, { 'data-cell': 'repository' }),
      cell('th', 'tag', row.tag, { scope: 'row', 'data-cell': 'tag' }),
      status,
      digestCell('source', row.source_digest),
      digestCell('destination', row.destination_digest),
      cell('td', outcome ? `outcome outcome-${outcome.state}` : '', outcome ? OUTCOME_LABELS[outcome.state] ?? outcome.state : '', {
        'data-cell': 'outcome',
        ...(outcome?.reason ? { title: outcome.reason } : {}),
      }),
    );
    return tr;
  }

  function render() {
    if (state.frame) cancelAnimationFrame(state.frame);
    state.frame = 0;
    for (const button of ui.counts) button.setAttribute('aria-pressed', String(state.statuses.has(button.dataset.rstatus)));
    if (!state.compared) return;
    ui.results.hidden = false;
    const rows = allRows();
    const n = wideCounts(rows);
    for (const status of STATUSES) ui.results.querySelector(`[data-rcount="${status}"]`).textContent = n[status];
    const visible = filterWideRows(rows, state);
    table.setRows(visible);
    ui.shown.textContent = `${visible.length} of ${rows.length} row(s) shown, ${state.byRepository.size} of ${state.order.length} repositories read`;
    const missing = [...missingByRepository(rows).values()].reduce((a, tags) => a + tags.length, 0);
    ui.copyMissing.querySelector('[data-n]').textContent = missing;
    ui.copyMissing.disabled = state.diffing || Boolean(state.copy) || missing === 0;
    ui.compare.disabled = Boolean(state.copy);
  }

  function scheduleRender() {
    if (!state.frame) state.frame = requestAnimationFrame(render);
  }

  function writeHash() {
    const own = formatWideHash({ ...(state.compared ?? {}), statuses: state.statuses, repo: state.repo, q: state.q });
    const other = withoutKeys(location.hash, WIDE_KEYS);
    const hash = [other, own].filter(Boolean).join('&');
    history.replaceState(null, '', hash ? `#${hash}` : `${location.pathname}${location.search}`);
  }

  function readForm() {
    for (const input of ui.form.querySelectorAll('[aria-invalid]')) input.removeAttribute('aria-invalid');
    try {
      const repos = parseList(ui.repos.value).join(',');
      return { src: parseWideRegistry(ui.src.value, 'reg-src'), dst: parseWideRegistry(ui.dst.value, 'reg-dst'), prefix: ui.prefix.value.trim(), repos };
    } catch (error) {
      if (!(error instanceof InputProblem)) throw error;
      const input = document.getElementById(error.field);
      input?.setAttribute('aria-invalid', 'true');
      input?.focus();
      say('error', `${input?.labels?.[0]?.textContent ?? 'Field'}: ${error.message}`);
      return null;
    }
  }

  function sides(compared, repository) {
    return {
      src: withAuth({ registry: compared.src, repository }, 'src'),
      dst: withAuth({ registry: compared.dst, repository }, 'dst'),
    };
  }

  /** The repositories to compare: the list, or both catalogs (a destination refusing its catalog only loses its extra repositories). */
  async function repositoriesOf(compared) {
    if (compared.repos) return chooseRepositories({ list: compared.repos, prefix: compared.prefix });
    const auth = sides(compared, '');
    const [source, destination] = await Promise.all([
      listCatalog(compared.src, { auth: auth.src.auth }),
      listCatalog(compared.dst, { auth: auth.dst.auth }).catch(() => []),
    ]);
    return chooseRepositories({ source, destination, prefix: compared.prefix });
  }

  async function diffOne(ferry, compared, repository) {
    const { src, dst } = sides(compared, repository);
    try {
      const report = await ferry.diff(src, dst, { details: false });
      state.byRepository.set(repository, repositoryRows(repository, report));
      if (report.errors.length) state.failures.set(repository, report.errors.map((e) => describeFailure(e.kind, e.message)).join('; '));
      else state.failures.delete(repository);
    } catch (error) {
      state.byRepository.set(repository, []);
      state.failures.set(repository, describeFailure(error?.kind, error?.message ?? String(error)));
    }
    scheduleRender();
  }

  /** Directly: both catalogs (or the list) from this tab, then one diff per repository. */
  async function diffEach(ferry, compared) {
    const order = await repositoriesOf(compared);
    state.order = order;
    render();
    let next = 0;
    const worker = async () => {
      while (next < order.length) {
        const repository = order[next];
        next += 1;
        say('busy', `Comparing ${state.byRepository.size + 1} of ${order.length} repositories…`);
        await diffOne(ferry, compared, repository);
      }
    };
    await Promise.all(Array.from({ length: Math.min(DIFF_CONCURRENCY, order.length) }, worker));
    return '';
  }

  /**
   * Through the relay: one job for the whole selection. A prefix without a list reads the
   * whole catalogs and keeps what is under it, as directly (the relay's own prefix maps
   * the source onto a destination path instead). Returns a note on re-attaches.
   */
  async function diffInOneJob(relay, compared) {
    const list = compared.repos ? chooseRepositories({ list: compared.repos, prefix: compared.prefix }) : [];
    if (compared.repos && !list.length) return '';
    state.order = list;
    render();
    const seen = new Set(list);
    const add = (repository) => {
      if (seen.has(repository)) return;
      seen.add(repository);
      state.order = [...seen].sort();
    };
    let reattached = 0;
    let job = '';
    const { src, dst } = sides(compared, '');
    say('busy', `Comparing through the relay: ${list.length ? `${list.length} repositories` : 'the whole catalogs'}…`);
    const report = await relay.diffRegistries(src, dst, {
      repositories: list,
      onRepository(line) {
        const repository = line.source_repository;
        if (!underPrefix(repository, compared.prefix)) return;
        add(repository);
        state.byRepository.set(repository, repositoryRows(repository, line));
        if (line.errors?.length) state.failures.set(repository, line.errors.map((e) => describeFailure(e.kind, e.message)).join('; '));
        say('busy', `Comparing through the relay: ${state.byRepository.size} repositories compared so far…`);
        scheduleRender();
      },
      onReattach(r) {
        reattached += 1;
        job = r.job;
        say('busy', `The relay's stream broke off (${r.reason}); re-attaching to job ${r.job} from line ${r.offset}…`);
      },
    });
    // The final report is the authority: every pair's rows, whether or not its line came.
    const byRepository = rowsByRepository(report, compared.prefix);
    for (const repository of byRepository.keys()) add(repository);
    for (const repository of seen) state.byRepository.set(repository, byRepository.get(repository) ?? []);
    // Errors no repository's line carried: the catalogs'.
    const told = new Set([...state.failures.values()]);
    const other = report.errors.map((e) => describeFailure(e.kind, e.message)).filter((why) => ![...told].some((t) => t.includes(why)));
    if (other.length) state.failures.set("the relay's diff", other.join('; '));
    return reattached ? ` The relay's stream broke off ${reattached} time(s); the page re-attached to job ${job} each time from the line it had read.` : '';
  }

  async function runDiff(compared, { keepOutcomes = false } = {}) {
    if (state.diffing) return;
    const ferry = await loadedFerry();
    if (!ferry) return;
    state.diffing = true;
    state.compared = compared;
    if (!keepOutcomes) state.outcomes.clear();
    writeHash();
    ui.results.setAttribute('aria-busy', 'true');
    state.order = [];
    state.byRepository = new Map();
    state.failures = new Map();
    say('busy', `Listing the repositories of ${compared.src} and ${compared.dst}…`);
    try {
      const note = ferry.diffRegistries ? await diffInOneJob(ferry, compared) : await diffEach(ferry, compared);
      const failed = [...state.failures].map(([repository, why]) => `${repository}: ${why}`);
      if (failed.length) say('warn', `Some repositories could not be compared, so the table may be incomplete: ${failed.join(' · ')}${note}`);
      else say('ok', state.order.length ? `Compared ${state.order.length} repositories.${note}` : 'No repository matches: the catalogs are empty, or none is under this prefix.');
    } catch (error) {
      const why = describeFailure(error?.kind, error?.message ?? String(error));
      // A fetch the browser refused: most often a registry that sends no CORS headers.
      const hint = !ferry.diffRegistries && error instanceof TypeError ? ' A registry that sends no CORS headers can still be reached through a relay: see "Through a relay" in the form above.' : '';
      say('error', `Comparing failed: ${why}${hint}`);
    } finally {
      state.diffing = false;
      ui.results.removeAttribute('aria-busy');
      render();
    }
  }

  function overallTotals() {
    let done = 0;
    let total = 0;
    const c = { copied: 0, skipped: 0, failed: 0, cancelled: 0, images: 0 };
    for (const progress of state.copy.progress.values()) {
      const o = progress.overall();
      done += o.done;
      total += o.total;
      c.images += o.images;
      for (const k of ['copied', 'skipped', 'failed', 'cancelled']) c[k] += o.counts[k];
    }
    return { done, total, c };
  }

  function updateOverall(ended) {
    const { done, total, c } = overallTotals();
    const finished = c.copied + c.skipped + c.failed + c.cancelled;
    ui.bar.max = Math.max(c.images, 1);
    ui.bar.value = finished;
    const repos = state.copy.progress.size;
    ui.overall.textContent = ended
      ? `${ended}: copied ${c.copied}, skipped ${c.skipped}, failed ${c.failed}${c.cancelled ? `, cancelled ${c.cancelled}` : ''} of ${c.images} image(s) in ${repos} repositories`
      : `${finished} of ${c.images} image(s) in ${repos} repositories · ${formatBytes(done)} of ${formatBytes(total)}`;
  }

  /** Directly: one ferry-wasm copy per repository, in turn. Returns how it ended. */
  async function copyEach(ferry, compared, plan, progress, signal) {
    let ended = 'Done';
    for (const [repository, tags] of plan) {
      const p = progress.get(repository);
      if (signal.aborted) {
        p.finishRemaining('cancelled');
        continue;
      }
      const { src, dst } = sides(compared, repository);
      try {
        const onProgress = (event) => {
          p.handle(event, performance.now());
          scheduleRender();
          updateOverall('');
        };
        const report = await ferry.copy(src, dst, { tags, onProgress, signal });
        p.applyReport(report);
        p.finishRemaining('failed', 'the job ended without an outcome for this image');
        if (report.status === 'failed') ended = 'Finished with failures';
      } catch (error) {
        ended = endedBy(error, [p]);
      }
      for (const tag of tags) state.outcomes.set(`${repository}:${tag}`, p.row(tag));
      updateOverall('');
    }
    return ended;
  }

  /** Through the relay: one copy job of every image, its events sent to each repository's progress. */
  async function copyInOneJob(relay, compared, plan, progress, signal) {
    const images = [];
    for (const [repository, tags] of plan) {
      for (const tag of tags) images.push({ source: `${compared.src}/${repository}:${tag}`, destination: `${compared.dst}/${repository}:${tag}` });
    }
    const { src, dst } = sides(compared, '');
    const auth = {};
    if (src.auth) auth.source = src.auth;
    if (dst.auth) auth.destination = dst.auth;
    const router = new EventRouter();
    let ended = 'Done';
    try {
      const report = await relay.copyImages(images, {
        auth,
        signal,
        onProgress(event) {
          progress.get(router.repositoryOf(event))?.handle(event, performance.now());
          scheduleRender();
          updateOverall('');
        },
        onReattach(r) {
          ui.overall.textContent = `The relay's stream broke off (${r.reason}); re-attaching to job ${r.job} from line ${r.offset}…`;
        },
      });
      for (const [repository, p] of progress) {
        p.applyReport({ images: report.images.filter((image) => repositoryOfReference(image.source) === repository) });
        p.finishRemaining('failed', 'the job ended without an outcome for this image');
      }
      if (report.status === 'failed') ended = 'Finished with failures';
    } catch (error) {
      ended = endedBy(error, [...progress.values()]);
    }
    for (const [repository, tags] of plan) {
      for (const tag of tags) state.outcomes.set(`${repository}:${tag}`, progress.get(repository).row(tag));
    }
    return ended;
  }

  /** How a copy that threw ended; settles the rows of `progresses` still running. */
  function endedBy(error, progresses) {
    if (error?.name === 'AbortError') {
      for (const p of progresses) p.finishRemaining('cancelled');
      return 'Cancelled';
    }
    for (const p of progresses) {
      if (error?.report) p.applyReport(error.report);
      p.finishRemaining('failed', describeFailure(error?.kind, error?.message ?? String(error)));
    }
    return 'Finished with failures';
  }

  async function copyAllMissing() {
    if (state.copy || state.diffing || !state.compared) return;
    const ferry = await loadedFerry();
    if (!ferry) return;
    const compared = state.compared;
    const plan = missingByRepository(allRows());
    const progress = new Map([...plan].map(([repository, tags]) => [repository, new CopyProgress(tags.map((tag) => ({ tag })), performance.now())]));
    const controller = new AbortController();
    state.copy = { progress, controller };
    ui.progress.hidden = false;
    delete ui.progress.dataset.state;
    ui.cancel.hidden = false;
    ui.cancel.disabled = false;
    updateOverall('');
    render();
    const copy = ferry.copyImages ? copyInOneJob : copyEach;
    const ended = await copy(ferry, compared, plan, progress, controller.signal);
    updateOverall(ended);
    ui.progress.dataset.state = ended.toLowerCase();
    ui.cancel.hidden = true;
    state.copy = null;
    await runDiff(compared, { keepOutcomes: true });
    // The diff's own message would hide how the copy ended.
    if (ended !== 'Done') say('warn', ui.overall.textContent);
  }

  /** Applies the hash; compares when it names two registries not compared yet. */
  function applyHash() {
    const wanted = parseWideHash(location.hash);
    state.statuses = wanted.statuses;
    state.repo = wanted.repo;
    state.q = wanted.q;
    ui.filterRepo.value = wanted.repo;
    ui.filterTag.value = wanted.q;
    render();
    if (!wanted.src || !wanted.dst || state.copy) return;
    ui.src.value = wanted.src;
    ui.dst.value = wanted.dst;
    ui.prefix.value = wanted.prefix;
    ui.repos.value = wanted.repos.split(',').join('\n');
    const compared = readForm();
    const c = state.compared;
    if (compared && !(c && c.src === compared.src && c.dst === compared.dst && c.prefix === compared.prefix && c.repos === compared.repos)) {
      document.getElementById('registries').open = true;
      runDiff(compared);
    }
  }

  ui.form.addEventListener('submit', (event) => {
    event.preventDefault();
    const compared = readForm();
    if (compared && !state.copy) runDiff(compared);
  });
  for (const button of ui.counts) {
    button.addEventListener('click', () => {
      const status = button.dataset.rstatus;
      if (state.statuses.has(status)) state.statuses.delete(status);
      else state.statuses.add(status);
      writeHash();
      render();
    });
  }
  ui.filterRepo.addEventListener('input', () => {
    state.repo = ui.filterRepo.value;
    writeHash();
    render();
  });
  ui.filterTag.addEventListener('input', () => {
    state.q = ui.filterTag.value;
    writeHash();
    render();
  });
  ui.copyMissing.addEventListener('click', copyAllMissing);
  ui.cancel.addEventListener('click', () => {
    if (!state.copy) return;
    ui.cancel.disabled = true;
    state.copy.controller.abort();
  });
  window.addEventListener('hashchange', applyHash);
  applyHash();
}
