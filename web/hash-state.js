// The page's state in the URL hash, so a comparison can be bookmarked and shared:
//
//   #src=http://127.0.0.1:5000/library/app&dst=http://127.0.0.1:5001/library/app&status=missing,different&q=1.
//
// `src` and `dst` are a registry's base URL followed by the repository path. `status`
// (optional) lists the statuses shown; `q` (optional) filters tags by text. Credentials
// never go here: the hash ends up in history, bookmarks and screenshots.

export const STATUSES = ['in_sync', 'missing', 'different', 'extra'];

/** An error the user caused and can fix by editing a field; `field` names it. */
export class InputProblem extends Error {
  constructor(field, message) {
    super(message);
    this.name = 'InputProblem';
    this.field = field;
  }
}

const LOOPBACK = /^(localhost|127(\.\d{1,3}){3}|\[::1\])(:\d+)?$/i;

/**
 * A registry base URL as typed: `http://127.0.0.1:5000`, `registry.example.com`,
 * `localhost:5000/`. Without a scheme, loopback hosts get `http://` and everything else
 * `https://`. A path after the host is returned as `repository` (so a whole
 * `host/library/app` may be pasted in the registry field).
 */
export function parseRegistry(text, field = 'registry') {
  let value = String(text ?? '').trim();
  if (!value) throw new InputProblem(field, 'Enter the registry URL, like http://127.0.0.1:5000.');
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) {
    const host = value.split('/')[0];
    value = `${LOOPBACK.test(host) ? 'http' : 'https'}://${value}`;
  }
  let url;
  try {
    url = new URL(value);
  } catch {
    throw new InputProblem(field, `"${text}" is not a URL; use http://host:port or https://host.`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new InputProblem(field, `"${text}" is not an http:// or https:// URL.`);
  }
  if (url.username || url.password) {
    throw new InputProblem(field, 'Put credentials in the Credentials section, not in the URL.');
  }
  if (url.search || url.hash) {
    throw new InputProblem(field, `"${text}" has a query or a fragment; give the registry's base URL only.`);
  }
  const repository = url.pathname.replace(/^\/+|\/+$/g, '').replace(/^v2(\/|$)/, '');
  return { registry: url.origin, repository };
}

// The distribution spec's repository name grammar:
// [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*
const REPOSITORY = /^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$/;

export function checkRepository(text, field = 'repository') {
  const value = String(text ?? '').trim().replace(/^\/+|\/+$/g, '');
  if (!value) throw new InputProblem(field, 'Enter a repository, like library/app.');
  if (!REPOSITORY.test(value)) {
    throw new InputProblem(field, `"${value}" is not a repository name: lowercase letters, digits, and . _ - / between them.`);
  }
  return value;
}

/** `http://host:port/library/app` into `{registry, repository}`. */
export function parseLocation(text, field) {
  const { registry, repository } = parseRegistry(text, field);
  return { registry, repository: checkRepository(repository, field) };
}

export function formatLocation({ registry, repository }) {
  return `${registry}/${repository}`;
}

// Keep URLs readable in the address bar: `:`, `/` and `,` need no escaping in a fragment.
function encode(value) {
  return encodeURIComponent(value).replace(/%3A/gi, ':').replace(/%2F/gi, '/').replace(/%2C/gi, ',');
}

function decode(value) {
  try {
    return decodeURIComponent(value.replace(/\+/g, ' '));
  } catch {
    return value;
  }
}

/**
 * `#src=…&dst=…&status=…&q=…` into `{src, dst, statuses, q}`: `src`/`dst` are the raw
 * texts (parse them with `parseLocation`), `statuses` a Set (all four when the key is
 * absent, none when it is empty).
 */
export function parseHash(hash) {
  const state = { src: '', dst: '', statuses: new Set(STATUSES), q: '' };
  const text = String(hash ?? '').replace(/^#/, '');
  for (const pair of text.split('&')) {
    if (!pair) continue;
    const at = pair.indexOf('=');
    const key = at < 0 ? pair : pair.slice(0, at);
    const value = at < 0 ? '' : decode(pair.slice(at + 1));
    if (key === 'src') state.src = value;
    else if (key === 'dst') state.dst = value;
    else if (key === 'q') state.q = value;
    else if (key === 'status') {
      state.statuses = new Set(value.split(',').filter((s) => STATUSES.includes(s)));
    }
  }
  return state;
}

/** The inverse of `parseHash`; default filters are left out to keep the URL short. */
export function formatHash({ src, dst, statuses, q }) {
  const parts = [];
  if (src) parts.push(`src=${encode(src)}`);
  if (dst) parts.push(`dst=${encode(dst)}`);
  const shown = STATUSES.filter((s) => statuses?.has(s));
  if (statuses && shown.length !== STATUSES.length) parts.push(`status=${shown.join(',')}`);
  if (q) parts.push(`q=${encode(q)}`);
  return parts.length ? `#${parts.join('&')}` : '';
}
