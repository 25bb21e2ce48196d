// Folds the core's progress events (crates/core/src/progress.rs, `Event`, serde-tagged
// with "event") into per-tag progress and job totals for the page.
//
// Events name images by index (`image`) and by reference (`source`, e.g.
// `127.0.0.1:5000/library/app:1.0`); a row of the table is a tag, so the tag is read from
// the source reference. An image's bar counts the blobs the destination already had or
// mounted as done, and streamed blobs by their bytes so far, against the image's size
// from the diff (manifests, configs and layers).

import { describeFailure } from './failure.js';
import { tagOf } from './format.js';

/** A row's copy state: queued, copying, copied, skipped, failed or cancelled. */
export const FINAL_STATES = new Set(['copied', 'skipped', 'failed', 'cancelled']);

export class CopyProgress {
  /**
   * `rows`: the tags being copied, `[{tag, size}]` (`size` from `diff(..., {details: true})`,
   * may be missing). `now`: milliseconds, from the caller's clock.
   */
  constructor(rows, now) {
    this.started = now;
    this.now = now;
    this.tags = new Map(rows.map((r) => [r.tag, { state: 'queued', size: r.size ?? 0, blobs: new Map(), reason: '' }]));
    this.imageTags = new Map();
    this.streamed = new Map();
    this.summary = null;
    this.status = null;
    this.planFailures = [];
  }

  /** Applies one event; returns the tag it changed, or null. */
  handle(event, now) {
    this.now = now;
    const row = (tag) => (tag != null ? this.tags.get(tag) : undefined);
    const byImage = () => this.imageTags.get(event.image);
    switch (event.event) {
      case 'image_started': {
        const tag = tagOf(event.source);
        this.imageTags.set(event.image, tag);
        const r = row(tag);
        // A failed image starts again in a later round (after `round_started`).
        if (r && (!FINAL_STATES.has(r.state) || r.state === 'failed')) {
          r.state = 'copying';
          r.reason = '';
        }
        return r ? tag : null;
      }
      case 'blob_progress': {
        const tag = byImage();
        const r = row(tag);
        this.streamed.set(`${event.image} ${event.digest}`, event.bytes);
        if (!r) return null;
        const blob = r.blobs.get(event.digest) ?? { bytes: 0, total: event.total, done: false };
        blob.bytes = Math.max(blob.bytes, event.bytes);
        blob.total = event.total;
        r.blobs.set(event.digest, blob);
        return tag;
      }
      case 'blob_done': {
        const tag = byImage();
        const r = row(tag);
        if (event.outcome === 'transferred') this.streamed.set(`${event.image} ${event.digest}`, event.size);
        if (!r) return null;
        r.blobs.set(event.digest, { bytes: event.size, total: event.size, done: true, outcome: event.outcome });
        return tag;
      }
      case 'image_done':
      case 'image_skipped':
      case 'image_failed': {
        const tag = tagOf(event.source) ?? byImage();
        const r = row(tag);
        if (!r) return null;
        if (event.event === 'image_done') r.state = 'copied';
        else if (event.event === 'image_skipped') r.state = 'skipped';
        else {
          r.state = 'failed';
          r.reason = describeFailure(event.kind, event.reason);
        }
        return tag;
      }
      case 'plan_failed':
        this.planFailures.push(describeFailure(event.kind, event.reason));
        return null;
      case 'job_finished':
        this.summary = event.summary;
        this.status = event.status;
        return null;
      default:
        return null;
    }
  }

  /** Advances the clock that elapsed time and throughput are measured with. */
  tick(now) {
    this.now = now;
  }

  /** `{state, done, total, reason}` of one tag; `done`/`total` in bytes. */
  row(tag) {
    const r = this.tags.get(tag);
    if (!r) return null;
    let done = 0;
    let seen = 0;
    for (const blob of r.blobs.values()) {
      done += blob.done ? blob.total : blob.bytes;
      seen += blob.total;
    }
    const total = Math.max(r.size, seen);
    if (r.state === 'copied' || r.state === 'skipped') done = total;
    return { state: r.state, done: Math.min(done, total), total, reason: r.reason };
  }

  /** Marks every tag still running as cancelled (or failed with `reason`). */
  finishRemaining(state, reason = '') {
    for (const r of this.tags.values()) {
      if (!FINAL_STATES.has(r.state)) {
        r.state = state;
        r.reason = reason;
      }
    }
  }

  /**
   * Applies the job's final report (`images[]` with `source`, `outcome`, `reason`), the
   * authority on how each image ended.
   */
  applyReport(report) {
    for (const image of report?.images ?? []) {
      const r = this.tags.get(tagOf(image.source));
      if (!r) continue;
      if (image.outcome === 'copied' || image.outcome === 'skipped' || image.outcome === 'failed') {
        r.state = image.outcome;
        r.reason = image.outcome === 'failed' ? describeFailure(image.kind, image.reason) : '';
      }
    }
  }

  /**
   * After a cancel, with the diff taken since: a tag cancelled while its manifest was in
   * flight may have made it. If the destination now holds the source's digest, the copy
   * completed (a manifest goes up only after everything it references).
   */
  settleCancelled(diff) {
    for (const row of diff?.rows ?? []) {
      const r = this.tags.get(row.tag);
      if (r?.state === 'cancelled' && row.status === 'in_sync') r.state = 'copied';
    }
  }

  /** Totals: bytes streamed, bytes of the selected images, images by state, elapsed ms. */
  overall() {
    let streamed = 0;
    for (const bytes of this.streamed.values()) streamed += bytes;
    const counts = { queued: 0, copying: 0, copied: 0, skipped: 0, failed: 0, cancelled: 0 };
    let done = 0;
    let total = 0;
    for (const tag of this.tags.keys()) {
      const r = this.row(tag);
      counts[r.state] += 1;
      done += r.done;
      total += r.total;
    }
    return { streamed, done, total, counts, images: this.tags.size, elapsedMs: this.now - this.started };
  }
}
