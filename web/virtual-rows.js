// A virtualised table body: only the rows in (or near) the scroll container's viewport
// are in the DOM, between two spacer rows that keep the scrollbar true to the whole
// list. Rows have one fixed height (CSS `.vrow`), so a window is plain arithmetic.

/** The slice `[start, end)` of `count` rows of `rowHeight` px to render, `overscan` rows either side. */
export function visibleWindow({ scrollTop, viewport, rowHeight, count, overscan = 10 }) {
  if (count <= 0 || rowHeight <= 0) return { start: 0, end: 0 };
  const first = Math.floor(Math.max(scrollTop, 0) / rowHeight);
  const start = Math.max(0, Math.min(first, count - 1) - overscan);
  const end = Math.min(count, first + Math.ceil(Math.max(viewport, 0) / rowHeight) + 1 + overscan);
  return { start, end };
}

function spacer(height) {
  const tr = document.createElement('tr');
  tr.className = 'vspacer';
  tr.setAttribute('aria-hidden', 'true');
  tr.style.height = `${height}px`;
  return tr;
}

/**
 * `rows` into `tbody` inside the scrolling `container`, building each visible row with
 * `renderRow(row, index)`. Call `refresh()` when the rows or their content change;
 * scrolling and resizing refresh by themselves.
 */
export class VirtualRows {
  constructor(container, tbody, renderRow, { rowHeight = 36 } = {}) {
    this.container = container;
    this.tbody = tbody;
    this.renderRow = renderRow;
    this.rowHeight = rowHeight;
    this.rows = [];
    this.frame = 0;
    container.addEventListener('scroll', () => this.schedule(), { passive: true });
    new ResizeObserver(() => this.schedule()).observe(container);
  }

  setRows(rows) {
    this.rows = rows;
    this.refresh();
  }

  schedule() {
    if (!this.frame) this.frame = requestAnimationFrame(() => this.refresh());
  }

  refresh() {
    if (this.frame) cancelAnimationFrame(this.frame);
    this.frame = 0;
    const count = this.rows.length;
    const { start, end } = visibleWindow({
      scrollTop: this.container.scrollTop,
      viewport: this.container.clientHeight || 600,
      rowHeight: this.rowHeight,
      count,
    });
    const shown = [];
    for (let i = start; i < end; i += 1) {
      const tr = this.renderRow(this.rows[i], i);
      tr.setAttribute('aria-rowindex', String(i + 2));
      shown.push(tr);
    }
    this.tbody.replaceChildren(spacer(start * this.rowHeight), ...shown, spacer((count - end) * this.rowHeight));
    this.tbody.closest('table')?.setAttribute('aria-rowcount', String(count + 1));
  }
}
