// Whole registries: which repositories to compare (every one in the two catalogs, those
// under a prefix, or a typed list), the catalog listing, the rows of one repository's
// diff flattened into the registry-wide table, its filters, and its part of the URL hash.
// Everything here is pure except `listCatalog`, which takes its `fetch` as an argument.

import { InputProblem, STATUSES, checkRepository, parseRegistry } from './hash-state.js';

/** Catalog page size asked for; the registry may answer with fewer and a `Link`. */
const CATALOG_PAGE = 1000;

/**
 * The `next` target of a `Link` header, resolved against `base`, or null. The
 * distribution spec: "the presence of the Link header ... `<url>; rel="next"`".
 */
export function nextLink(link, base) {
  if (!link) return null;
  for (const part of link.split(',')) {
    const match = /<([^>]*)>\s*;\s*rel="?next"?/i.exec(part);
    if (match) return new URL(match[1], base).href;
  }
  return null;
}

/** Basic or Bearer `Authorization` of a side's credentials, or none. */
function authorization(auth) {
  if (auth?.token) return { Authorization: `Bearer ${auth.token}` };
  if (auth?.username || auth?.password) return { Authorization: `Basic ${btoa(`${auth.username ?? ''}:${auth.password ?? ''}`)}` };
  return {};
}

/**
 * Every repository of `registry`'s catalog (`GET /v2/_catalog`, following `Link`), sorted.
 * Throws an Error naming the registry and the status when the catalog is refused.
 */
export async function listCatalog(registry, { auth, fetch: get = fetch } = {}) {
  const repositories = [];
  let url = `${registry}/v2/_catalog?n=${CATALOG_PAGE}`;
  for (let pages = 0; url; pages += 1) {
    if (pages > 10_000) throw new Error(`${registry}: the catalog's Link headers do not end`);
    const response = await get(url, { headers: { Accept: 'application/json', ...authorization(auth) } });
    if (!response.ok) {
      throw new Error(`${registry} refused its catalog (GET /v2/_catalog: HTTP ${response.status}); list the repositories instead`);
    }
    const body = await response.json();
    repositories.push(...(body.repositories ?? []));
    url = nextLink(response.headers.get('link'), url);
  }
  return [...new Set(repositories)].sort();
}

/**
 * The repositories to compare: the typed `list` (comma or whitespace separated) when
 * given, else the union of both catalogs, narrowed to those under `prefix`.
 */
export function chooseRepositories({ source = [], destination = [], prefix = '', list = '' }) {
  const typed = parseList(list);
  const all = typed.length ? typed : [...new Set([...source, ...destination])];
  return all.filter((r) => underPrefix(r, prefix)).sort();
}

/** A typed list of repositories, each checked against the spec's grammar. */
export function parseList(text, field = 'reg-repos') {
  return String(text ?? '')
    .split(/[\s,]+/)
    .filter(Boolean)
    .map((r) => checkRepository(r, field));
}

/** One repository's `diff` rows as registry-wide rows: `{key, repository, tag, status, ...}`. */
export function repositoryRows(repository, report) {
  return report.rows.map((row) => ({ ...row, repository, key: `${repository}:${row.tag}` }));
}

/** Whether `repository` is `prefix` or under it (an empty prefix holds everything). */
export function underPrefix(repository, prefix) {
  const under = String(prefix ?? '').replace(/^\/+|\/+$/g, '');
  return !under || repository === under || repository.startsWith(`${under}/`);
}

/**
 * A diff report's rows as registry-wide rows, grouped by repository (rows name their
 * source repository), keeping only the repositories under `prefix`.
 */
export function rowsByRepository(report, prefix = '') {
  const by = new Map();
  for (const row of report?.rows ?? []) {
    if (!underPrefix(row.repository, prefix)) continue;
    if (!by.has(row.repository)) by.set(row.repository, []);
    by.get(row.repository).push({ ...row, key: `${row.repository}:${row.tag}` });
  }
  return by;
}

/** The repository of an image reference as the core's events name it: `host[:port]/repo:tag` or `…/repo@digest`. */
export function repositoryOfReference(reference) {
  const text = String(reference ?? '');
  const slash = text.indexOf('/');
  if (slash < 0) return null;
  const name = text.slice(slash + 1).split('@')[0];
  const colon = name.lastIndexOf(':');
  return colon > name.lastIndexOf('/') ? name.slice(0, colon) : name;
}

/**
 * Tells which repository each event of a copy job across repositories is about: events
 * name their image by reference (`source`) when it starts and ends, and by index
 * (`image`) in between.
 */
export class EventRouter {
  constructor() {
    this.images = new Map();
  }

  /** The event's repository, or null for an event of the whole job. */
  repositoryOf(event) {
    if (event.source) {
      const repository = repositoryOfReference(event.source);
      if (event.image != null) this.images.set(event.image, repository);
      return repository;
    }
    return event.image != null ? this.images.get(event.image) ?? null : null;
  }
}

/** Rows whose status is in `statuses`, repository contains `repo` and tag contains `q`. */
export function filterWideRows(rows, { statuses, repo, q }) {
  const r = String(repo ?? '').trim().toLowerCase();
  const t = String(q ?? '').trim().toLowerCase();
  return rows.filter(
    (row) => statuses.has(row.status) && (!r || row.repository.toLowerCase().includes(r)) && (!t || row.tag.toLowerCase().includes(t)),
  );
}

/** How many rows of each status. */
export function wideCounts(rows) {
  const n = Object.fromEntries(STATUSES.map((s) => [s, 0]));
  for (const row of rows) n[row.status] = (n[row.status] ?? 0) + 1;
  return n;
}

/** Repository -> tags to copy ("missing" or "different"), in table order. */
export function missingByRepository(rows) {
  const by = new Map();
  for (const row of rows) {
    if (row.status !== 'missing' && row.status !== 'different') continue;
    if (!by.has(row.repository)) by.set(row.repository, []);
    by.get(row.repository).push(row.tag);
  }
  return by;
}

// ------------------------------------------------------------------ the hash

/** The hash keys of the registry-wide view; the single-repository view owns the rest. */
export const WIDE_KEYS = ['rsrc', 'rdst', 'prefix', 'repos', 'rstatus', 'rrepo', 'rq'];

function decode(value) {
  try {
    return decodeURIComponent(value.replace(/\+/g, ' '));
  } catch {
    return value;
  }
}

function encode(value) {
  return encodeURIComponent(value).replace(/%3A/gi, ':').replace(/%2F/gi, '/').replace(/%2C/gi, ',');
}

/** `#rsrc=…&rdst=…&prefix=…&repos=a,b&rstatus=…&rrepo=…&rq=…` into the view's state. */
export function parseWideHash(hash) {
  const state = { src: '', dst: '', prefix: '', repos: '', statuses: new Set(STATUSES), repo: '', q: '' };
  for (const pair of String(hash ?? '').replace(/^#/, '').split('&')) {
    const at = pair.indexOf('=');
    if (at < 0) continue;
    const key = pair.slice(0, at);
    const value = decode(pair.slice(at + 1));
    if (key === 'rsrc') state.src = value;
    else if (key === 'rdst') state.dst = value;
    else if (key === 'prefix') state.prefix = value;
    else if (key === 'repos') state.repos = value;
    else if (key === 'rrepo') state.repo = value;
    else if (key === 'rq') state.q = value;
    else if (key === 'rstatus') state.statuses = new Set(value.split(',').filter((s) => STATUSES.includes(s)));
  }
  return state;
}

/** The view's pairs (without `#`), defaults left out. */
export function formatWideHash({ src, dst, prefix, repos, statuses, repo, q }) {
  const parts = [];
  if (src) parts.push(`rsrc=${encode(src)}`);
  if (dst) parts.push(`rdst=${encode(dst)}`);
  if (prefix) parts.push(`prefix=${encode(prefix)}`);
  if (repos) parts.push(`repos=${encode(repos)}`);
  const shown = STATUSES.filter((s) => statuses?.has(s));
  if (statuses && shown.length !== STATUSES.length) parts.push(`rstatus=${shown.join(',')}`);
  if (repo) parts.push(`rrepo=${encode(repo)}`);
  if (q) parts.push(`rq=${encode(q)}`);
  return parts.join('&');
}

/** `hash` without the pairs whose key is in `keys` (without `#`). */
export function withoutKeys(hash, keys) {
  return String(hash ?? '')
    .replace(/^#/, '')
    .split('&')
    .filter((pair) => pair && !keys.includes(pair.split('=')[0]))
    .join('&');
}

/** A registry base URL typed in the registry-wide form; a path after the host is refused. */
export function parseWideRegistry(text, field) {
  const { registry, repository } = parseRegistry(text, field);
  if (repository) throw new InputProblem(field, `Give the registry's base URL only; put "${repository}" in the prefix or the list.`);
  return registry;
}
