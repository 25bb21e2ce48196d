// Shows what `diagnose` (cors.js) found: the registry, the missing headers, the fixes.

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text != null) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function snippet(title, text) {
  const wrap = el('div', null, 'snippet-wrap');
  const pre = el('pre', text, 'snippet');
  pre.tabIndex = 0;
  pre.setAttribute('aria-label', title);
  const copy = el('button', 'Copy', 'copy-snippet');
  copy.type = 'button';
  copy.dataset.copy = text;
  copy.setAttribute('aria-label', `Copy: ${title}`);
  wrap.append(pre, copy);
  return [el('h3', title), wrap];
}

/** One `<section>` per diagnosis, appended to `container`. */
export function renderDiagnosis(container, diagnosis) {
  const section = el('section', null, diagnosis.verdict === 'ok' ? 'diagnosis ok' : 'diagnosis');
  section.dataset.registry = diagnosis.registry;
  section.dataset.verdict = diagnosis.verdict;
  section.append(el('h2', diagnosis.title));
  if (diagnosis.problems.length) {
    const list = el('ul');
    for (const problem of diagnosis.problems) list.append(el('li', problem));
    section.append(list);
  }
  if (diagnosis.note) section.append(el('p', diagnosis.note));
  if (diagnosis.fixes) {
    section.append(
      ...snippet(`Fix for ferry serve (${diagnosis.registry})`, diagnosis.fixes.ferry),
      ...snippet(`Fix for distribution, in its config.yml (${diagnosis.registry})`, diagnosis.fixes.distribution),
    );
  }
  container.append(section);
  container.hidden = false;
}
