// The edge relay's own users: entries `user:pbkdf2-sha256$<iterations>$<salt>$<hash>` (salt and hash in base64),
// one per line or separated by spaces, from the host's RELAY_USERS secret. A request names its user with HTTP Basic
// (RFC 7617). Hashing is WebCrypto's PBKDF2 with SHA-256 (RFC 8018), which Node and workerd both offer; the derived
// bits are compared without an early exit, and an unknown user costs the same hashing as a known one.
//
//   node wasm-demo/hash-password.mjs <user>    prints an entry for the password read from stdin

/** PBKDF2 iterations of a new entry: the most Cloudflare Workers' PBKDF2 accepts (workerd refuses more). */
export const ITERATIONS = 100_000;
const SCHEME = 'pbkdf2-sha256';
const HASH_BYTES = 32;

const encoder = new TextEncoder();

function toBase64(bytes) {
  return btoa(String.fromCharCode(...bytes));
}

function fromBase64(text) {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

async function derive(password, salt, iterations) {
  const key = await crypto.subtle.importKey('raw', encoder.encode(password), 'PBKDF2', false, ['deriveBits']);
  const bits = await crypto.subtle.deriveBits({ name: 'PBKDF2', hash: 'SHA-256', salt, iterations }, key, HASH_BYTES * 8);
  return new Uint8Array(bits);
}

/** An entry for `user` and `password`, with a random salt. */
export async function hashPassword(user, password, iterations = ITERATIONS) {
  if (!user || user.includes(':') || /\s/.test(user)) throw new Error('a user name is not empty and has no colon or space');
  const salt = crypto.getRandomValues(new Uint8Array(16));
  const hash = await derive(password, salt, iterations);
  return `${user}:${SCHEME}$${iterations}$${toBase64(salt)}$${toBase64(hash)}`;
}

/**
 * RELAY_USERS read into user -> {iterations, salt, hash}. A malformed entry throws an error naming it by its user
 * (never by its hash) and the fix.
 */
export function parseUsers(text) {
  const users = new Map();
  for (const entry of String(text ?? '').split(/\s+/).filter(Boolean)) {
    const at = entry.indexOf(':');
    const user = at > 0 ? entry.slice(0, at) : '';
    const [scheme, iterations, salt, hash] = entry.slice(at + 1).split('$');
    const fix = 'make entries with node wasm-demo/hash-password.mjs <user>';
    const count = Number(iterations);
    if (!user || scheme !== SCHEME || !Number.isInteger(count) || count < 1 || !salt || !hash) {
      throw new Error(`RELAY_USERS: the entry of ${JSON.stringify(user || '(no user)')} is not user:${SCHEME}$iterations$salt$hash; ${fix}`);
    }
    if (count > ITERATIONS) throw new Error(`RELAY_USERS: ${user}'s entry has ${count} iterations; Workers' PBKDF2 allows at most ${ITERATIONS}`);
    let decoded;
    try {
      decoded = { iterations: count, salt: fromBase64(salt), hash: fromBase64(hash) };
    } catch {
      throw new Error(`RELAY_USERS: ${user}'s salt or hash is not base64; ${fix}`);
    }
    if (decoded.hash.length !== HASH_BYTES) throw new Error(`RELAY_USERS: ${user}'s hash is not ${HASH_BYTES} bytes; ${fix}`);
    users.set(user, decoded);
  }
  if (users.size === 0) throw new Error('RELAY_USERS names no user; make entries with node wasm-demo/hash-password.mjs <user>');
  return users;
}

/** The same bytes, compared without an early exit. */
function sameBytes(a, b) {
  let differ = a.length ^ b.length;
  for (let i = 0; i < b.length; i += 1) differ |= (a[i] ?? 0) ^ b[i];
  return differ === 0;
}

/** What an unknown user is checked against, so that it costs what a known one does. */
const NOBODY = { iterations: ITERATIONS, salt: new Uint8Array(16), hash: new Uint8Array(HASH_BYTES) };

/** The user an `Authorization: Basic ...` value names with the right password; else null. */
export async function authenticate(users, authorization) {
  const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(authorization ?? '');
  if (!match) return null;
  let pair;
  try {
    pair = new TextDecoder('utf-8', { fatal: true }).decode(fromBase64(match[1]));
  } catch {
    return null;
  }
  const colon = pair.indexOf(':');
  if (colon < 0) return null;
  const [user, password] = [pair.slice(0, colon), pair.slice(colon + 1)];
  const known = users.get(user);
  const entry = known ?? NOBODY;
  const hash = await derive(password, entry.salt, entry.iterations);
  return sameBytes(hash, entry.hash) && known ? user : null;
}
