// Small formatting helpers shared by the table and the progress view.

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** 1536 -> "1.5 KiB"; binary units, like `ferry` on the command line. */
export function formatBytes(n) {
  if (n == null || !Number.isFinite(n)) return '';
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const digits = unit === 0 || value >= 100 ? 0 : 1;
  return `${value.toFixed(digits)} ${UNITS[unit]}`;
}

/** Bytes per second over `ms` milliseconds, as "12.3 MiB/s". */
export function formatRate(bytes, ms) {
  if (!ms || ms <= 0) return '';
  return `${formatBytes((bytes * 1000) / ms)}/s`;
}

/** "sha256:0123456789abcdef…" -> "sha256:0123456789ab" (12 hex digits, like docker). */
export function shortDigest(digest) {
  if (!digest) return '';
  const [algorithm, hex] = digest.includes(':') ? digest.split(':', 2) : ['', digest];
  return algorithm ? `${algorithm}:${hex.slice(0, 12)}` : hex.slice(0, 12);
}

/**
 * The tag of an image reference as the core prints it (`host:port/repo/name:tag`, maybe
 * with `@sha256:…`); `null` when the reference names a digest only.
 */
export function tagOf(reference) {
  const name = String(reference ?? '').split('@')[0];
  const colon = name.lastIndexOf(':');
  return colon > name.lastIndexOf('/') ? name.slice(colon + 1) : null;
}
