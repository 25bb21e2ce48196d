// Why a browser cannot talk to a registry, and the exact fix.
//
// When `fetch` fails, a page learns nothing more than "TypeError: Failed to fetch": the
// Fetch standard hides whether the host was down or a CORS check failed. So the page
// asks again, in ways that each isolate one condition:
//
//  (a) `mode: 'no-cors'` GET /v2/: an opaque answer means the registry is reachable
//      (no CORS check applies), a failure means it is not (or mixed content);
//  (b) a simple CORS GET /v2/ (no custom headers, so no preflight): it fails when the
//      answer lacks an `Access-Control-Allow-Origin` that matches this page's origin;
//  (c) preflighted requests, one per method or header ferry needs: each fails when the
//      preflight `OPTIONS` is not answered 2xx with that method or header allowed (a
//      registry with auth that answers the preflight 401 fails them all: browsers never
//      send credentials on a preflight, Fetch standard, "CORS-preflight fetch");
//  (d) reads of `Docker-Content-Digest` and `Link`: a CORS response exposes only the
//      safelisted headers plus those listed in `Access-Control-Expose-Headers`.
//
// `probe` runs these against a live registry (it needs a browser's `fetch` to mean
// anything); `diagnose` turns its findings into words and config snippets, and is pure.

/** Hosts of Docker Hub's registry: it sends no CORS headers at all. */
export const DOCKER_HUB_HOSTS = ['registry-1.docker.io', 'docker.io', 'index.docker.io', 'registry.hub.docker.com'];

/** What ferry-wasm sends and reads, kept in step with `ferry serve`'s CORS layer. */
export const NEEDED = {
  methods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'],
  headers: ['Authorization', 'Accept', 'Content-Type', 'Content-Range', 'Range', 'Docker-Content-Digest'],
  expose: ['Docker-Content-Digest', 'Location', 'Link', 'Range', 'Content-Range', 'WWW-Authenticate', 'Docker-Upload-UUID', 'Retry-After'],
};

/**
 * The preflighted requests of (c). Each isolates one method or one request header:
 * GET and POST are CORS-safelisted methods, so their probes test only the header.
 * None of them changes anything: `/v2/` has no write endpoint.
 */
export const PREFLIGHTS = [
  { need: 'Authorization', kind: 'header', method: 'GET', headers: { Authorization: 'Bearer ferry-cors-probe' } },
  { need: 'Content-Type', kind: 'header', method: 'POST', headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' } },
  { need: 'Content-Range', kind: 'header', method: 'POST', headers: { 'Content-Range': '0-0' } },
  { need: 'PUT', kind: 'method', method: 'PUT', headers: {} },
  { need: 'PATCH', kind: 'method', method: 'PATCH', headers: {} },
];

export function isDockerHub(registry) {
  try {
    return DOCKER_HUB_HOSTS.includes(new URL(registry).hostname.toLowerCase());
  } catch {
    return false;
  }
}

async function attempt(fetchFn, url, init) {
  try {
    const response = await fetchFn(url, { cache: 'no-store', credentials: 'omit', redirect: 'follow', ...init });
    return { ok: true, response };
  } catch (error) {
    return { ok: false, error: String(error?.message ?? error) };
  }
}

/**
 * Runs (a)–(d) against `registry` (a base URL). `repository`, when given, lets (d) read a
 * tag list and HEAD a manifest. Returns the findings `diagnose` explains.
 */
export async function probe(registry, { repository, pageOrigin, fetch: fetchFn = globalThis.fetch.bind(globalThis) } = {}) {
  const base = `${registry.replace(/\/+$/, '')}/v2/`;
  const findings = {
    registry,
    pageOrigin,
    dockerHub: isDockerHub(registry),
    mixedContent: pageOrigin?.startsWith('https:') && registry.startsWith('http:') && !/^http:\/\/(localhost|127\.|\[::1\])/.test(registry),
    reachable: false,
    simple: { ok: false },
    preflights: [],
    exposed: {},
  };
  const opaque = await attempt(fetchFn, base, { mode: 'no-cors' });
  findings.reachable = opaque.ok;
  if (!opaque.ok) return findings;

  const simple = await attempt(fetchFn, base, { mode: 'cors' });
  findings.simple = simple.ok ? { ok: true, status: simple.response.status } : { ok: false, error: simple.error };
  if (!simple.ok) return findings;

  findings.preflights = await Promise.all(
    PREFLIGHTS.map(async (p) => {
      const r = await attempt(fetchFn, base, { mode: 'cors', method: p.method, headers: p.headers });
      return { need: p.need, kind: p.kind, ok: r.ok };
    }),
  );

  findings.exposed = await exposedHeaders(fetchFn, registry, repository);
  return findings;
}

/**
 * (d): `true` when the header was readable, `false` when the registry must have sent it
 * but it was hidden, `null` when this probe could not tell.
 */
async function exposedHeaders(fetchFn, registry, repository) {
  const exposed = { 'Docker-Content-Digest': null, Link: null, Location: null, Range: null };
  if (!repository) return exposed;
  const tags = await attempt(fetchFn, `${registry}/v2/${repository}/tags/list?n=1`, { mode: 'cors' });
  if (!tags.ok || tags.response.status !== 200) return exposed;
  if (tags.response.headers.get('Link')) exposed.Link = true;
  let tag;
  try {
    tag = (await tags.response.json())?.tags?.[0];
  } catch {
    return exposed;
  }
  if (!tag) return exposed;
  const head = await attempt(fetchFn, `${registry}/v2/${repository}/manifests/${encodeURIComponent(tag)}`, {
    mode: 'cors',
    method: 'HEAD',
    // A short Accept keeps the request simple (no preflight): Fetch safelists an Accept
    // value of at most 128 bytes.
    headers: { Accept: 'application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json' },
  });
  if (head.ok && head.response.status === 200) {
    exposed['Docker-Content-Digest'] = head.response.headers.get('Docker-Content-Digest') != null;
  }
  return exposed;
}

function distributionSnippet(origin) {
  const list = (items) => `[${items.map((i) => `"${i}"`).join(', ')}]`;
  return [
    '# distribution (registry:2) config.yml; one origin only: distribution sends each',
    '# list entry as its own header line, and browsers refuse two Allow-Origin lines.',
    'http:',
    '  headers:',
    `    Access-Control-Allow-Origin: ["${origin}"]`,
    `    Access-Control-Allow-Methods: ${list(NEEDED.methods)}`,
    `    Access-Control-Allow-Headers: ${list(NEEDED.headers)}`,
    `    Access-Control-Expose-Headers: ${list(NEEDED.expose)}`,
  ].join('\n');
}

function ferrySnippet(origin) {
  return [
    `ferry serve --cors-origin ${origin}`,
    '# or in its config file:',
    `cors: { origins: ["${origin}"] }`,
  ].join('\n');
}

/**
 * Findings into `{registry, side, verdict, title, problems[], fixes: {distribution,
 * ferry} | null, note}`. `side` is "source" or "destination" (for the wording only).
 */
export function diagnose(findings, side = 'registry') {
  const { registry, pageOrigin } = findings;
  const origin = pageOrigin || 'ORIGIN-OF-THIS-PAGE';
  const fixes = { distribution: distributionSnippet(origin), ferry: ferrySnippet(origin) };
  const who = `The ${side} ${registry}`;
  const result = (verdict, title, problems, extra = {}) => ({ registry, side, verdict, title, problems, fixes, note: '', ...extra });

  if (findings.dockerHub) {
    return result(
      'docker_hub',
      `${who} is Docker Hub, which sends no CORS headers at all: a browser page cannot use it directly.`,
      ['No Access-Control-Allow-Origin on any answer, and no answer to preflights.'],
      {
        fixes: null,
        note: 'Copy from Docker Hub with the ferry CLI (ferry copy / ferry sync), or mirror it into a registry you run with CORS on, then use that here.',
      },
    );
  }
  if (findings.mixedContent) {
    return result(
      'mixed_content',
      `${who} is plain http:// while this page is https://: the browser blocks it as mixed content before any CORS check.`,
      ['Serve the registry over https://, or open this page over http:// (for example from `ferry serve --ui`).'],
      { fixes: null },
    );
  }
  if (!findings.reachable) {
    return result(
      'unreachable',
      `${who} did not answer at all: is it running, and are the scheme, host and port right?`,
      [`GET ${registry}/v2/ failed even without CORS (mode no-cors): no connection, or a TLS error.`],
      { fixes: null },
    );
  }
  if (!findings.simple.ok) {
    return result(
      'no_allow_origin',
      `${who} answers, but sends no Access-Control-Allow-Origin for ${origin}: the browser hides every answer from this page.`,
      [
        `Missing header: Access-Control-Allow-Origin: ${origin} (or *) on its answers to GET ${registry}/v2/.`,
        'Then the preflight answers (OPTIONS) need Access-Control-Allow-Methods and -Allow-Headers, and Access-Control-Expose-Headers must list the headers ferry reads.',
      ],
    );
  }
  const failed = findings.preflights.filter((p) => !p.ok);
  if (failed.length && failed.length === findings.preflights.length) {
    const problems = [
      'Every preflighted request failed: the preflight (OPTIONS) is not answered with a 2xx that carries Access-Control-Allow-Origin, -Allow-Methods and -Allow-Headers.',
    ];
    if (findings.simple.status === 401) {
      problems.push(
        `GET ${registry}/v2/ answered 401 (the registry wants credentials): registries with auth often answer the preflight OPTIONS with 401 too, and browsers never send credentials on a preflight. distribution does this whenever auth is on; put a proxy in front that answers OPTIONS with 204, or use ferry serve, which answers preflights before auth.`,
      );
    }
    return result('preflight', `${who} allows simple reads from ${origin}, but not the preflighted requests ferry sends.`, problems);
  }
  if (failed.length) {
    const methods = failed.filter((p) => p.kind === 'method').map((p) => p.need);
    const headers = failed.filter((p) => p.kind === 'header').map((p) => p.need);
    const problems = [];
    if (methods.length) problems.push(`Access-Control-Allow-Methods lacks ${methods.join(', ')}.`);
    if (headers.length) problems.push(`Access-Control-Allow-Headers lacks ${headers.join(', ')}.`);
    return result('preflight', `${who} answers preflights, but refuses some of what ferry sends.`, problems);
  }
  const hidden = Object.entries(findings.exposed).filter(([, readable]) => readable === false).map(([h]) => h);
  if (hidden.length) {
    return result(
      'expose',
      `${who} allows ${origin}, but hides headers ferry must read.`,
      [`Access-Control-Expose-Headers lacks ${hidden.join(', ')}.`],
    );
  }
  const unchecked = Object.entries(findings.exposed).filter(([, readable]) => readable === null).map(([h]) => h);
  return result(
    'ok',
    `${who} allows this page (${origin}): Allow-Origin, preflights for ${findings.preflights.map((p) => p.need).join(', ')} pass.`,
    [],
    {
      fixes: null,
      note: unchecked.length
        ? `Not checked: whether ${unchecked.join(', ')} are exposed (Access-Control-Expose-Headers); Location and Range come only with uploads, Link only with a tag list split in pages.`
        : '',
    },
  );
}
