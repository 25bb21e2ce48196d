// The diff table: one row per tag, filtered by status and text, with the copy outcome of
// the last copy in its own column. `filterRows` and `copyableTags` are pure; the render
// functions build DOM nodes and never touch state of their own.

import { formatBytes, shortDigest } from './format.js';
import { STATUSES } from './hash-state.js';

export const STATUS_LABELS = { in_sync: 'in sync', missing: 'missing', different: 'different', extra: 'extra' };

/** What "Copy all missing" copies: tags the destination lacks or holds at another digest. */
export const COPY_STATUSES = new Set(['missing', 'different']);

/** Rows whose status is in `statuses` and whose tag contains `query` (case-insensitive). */
export function filterRows(rows, statuses, query) {
  const q = String(query ?? '').trim().toLowerCase();
  return rows.filter((row) => statuses.has(row.status) && (!q || row.tag.toLowerCase().includes(q)));
}

/** Tags of `rows` that a copy can act on: every tag the source has. */
export function copyableTags(rows) {
  return rows.filter((row) => row.source_digest).map((row) => row.tag);
}

export function counts(report) {
  return Object.fromEntries(STATUSES.map((s) => [s, report?.[s] ?? 0]));
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value == null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else if (key.startsWith('data-') || key.startsWith('aria-') || key === 'role' || key === 'title' || key === 'type') {
      node.setAttribute(key, value === true ? '' : value);
    } else node[key] = value;
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}

/**
 * A row's referrers (signatures, SBOMs, attestations) as `{total, missing}`: how many the
 * two sides list, and how many of them the destination lacks.
 */
export function referrerCounts(row) {
  const referrers = row.referrers ?? [];
  return { total: referrers.length, missing: referrers.filter((r) => r.status === 'missing').length };
}

function referrersCell(row) {
  const { total, missing } = referrerCounts(row);
  const td = el('td', { class: 'num', 'data-label': 'Referrers', 'data-cell': 'referrers' });
  if (!total) {
    td.append(el('span', { class: 'muted', text: '—' }));
    return td;
  }
  const kinds = (row.referrers ?? []).map((r) => `${r.artifact_type ?? 'referrer'}: ${r.status.replace('_', ' ')}`);
  td.append(el('span', { title: kinds.join('\n'), text: missing ? `${total} (${missing} missing)` : String(total) }));
  return td;
}

function digestCell(label, digest) {
  const td = el('td', { class: 'digest-cell', 'data-label': label });
  if (!digest) {
    td.append(el('span', { class: 'muted', text: '—', 'aria-label': 'none' }));
    return td;
  }
  // A button, so the full digest is one keypress away: title shows it, click copies it.
  td.append(
    el('button', {
      type: 'button',
      class: 'digest',
      title: `${digest} (click to copy)`,
      'aria-label': `${label} ${digest}, copy`,
      'data-copy': digest,
      'data-digest': digest,
      text: shortDigest(digest),
    }),
  );
  return td;
}

/** The outcome cell's content: a bar while copying, then copied / skipped / failed. */
export function renderOutcome(td, outcome) {
  td.replaceChildren();
  if (!outcome) return;
  td.dataset.state = outcome.state;
  const label = {
    queued: 'queued',
    copying: 'copying',
    copied: 'copied',
    skipped: 'skipped: already there',
    failed: 'failed',
    cancelled: 'cancelled',
  }[outcome.state];
  if (outcome.state === 'copying' || outcome.state === 'queued') {
    const bar = el('progress', { max: Math.max(outcome.total, 1), value: outcome.done, 'aria-label': `copy progress` });
    const pct = outcome.total ? Math.floor((outcome.done / outcome.total) * 100) : 0;
    td.append(bar, el('span', { class: 'outcome-text', text: outcome.state === 'queued' ? label : `${pct}% · ${formatBytes(outcome.done)}` }));
    return;
  }
  td.append(el('span', { class: `outcome outcome-${outcome.state}`, text: label }));
  if (outcome.reason) td.append(el('span', { class: 'outcome-reason', text: outcome.reason }));
}

/**
 * Rows into `tbody`. `selected`: Set of tags with their box ticked; `outcomes`: Map of tag
 * to `{state, done, total, reason}`; `busy`: a copy runs, boxes are locked.
 */
export function renderRows(tbody, rows, { selected, outcomes, busy }) {
  tbody.replaceChildren(
    ...rows.map((row) => {
      const tr = el('tr', { 'data-tag': row.tag, 'data-status': row.status });
      const canCopy = Boolean(row.source_digest);
      const box = el('input', {
        type: 'checkbox',
        class: 'select-row',
        'aria-label': canCopy ? `Select ${row.tag}` : `${row.tag} is not in the source`,
        'data-tag': row.tag,
        checked: selected.has(row.tag),
        disabled: !canCopy || busy,
      });
      const platforms = row.platforms?.length
        ? el('span', { class: 'platforms' }, ...row.platforms.map((p) => el('span', { class: 'chip', text: p })))
        : el('span', { class: 'muted', text: '—' });
      const outcome = el('td', { class: 'outcome-cell', 'data-label': 'Copy', 'data-cell': 'outcome', 'aria-live': 'off' });
      renderOutcome(outcome, outcomes.get(row.tag));
      tr.append(
        el('td', { class: 'select-cell' }, box),
        el('th', { scope: 'row', class: 'tag', 'data-label': 'Tag' }, el('code', { text: row.tag })),
        el(
          'td',
          { 'data-label': 'Status', 'data-cell': 'status' },
          el('span', { class: `badge badge-${row.status}`, text: STATUS_LABELS[row.status] ?? row.status }),
        ),
        digestCell('Source', row.source_digest),
        digestCell('Destination', row.destination_digest),
        el('td', { 'data-label': 'Platforms', 'data-cell': 'platforms' }, platforms),
        el('td', { class: 'num', 'data-label': 'Size', 'data-cell': 'size', text: formatBytes(row.size) || '—' }),
        referrersCell(row),
        outcome,
      );
      return tr;
    }),
  );
}
