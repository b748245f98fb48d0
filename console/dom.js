// DOM helpers. Every piece of data reaches the page through text nodes or
// attribute values, never through HTML parsing: audit events hold
// attacker-controlled strings, so this module has no innerHTML at all.

const FORBIDDEN = new Set(['innerHTML', 'outerHTML', 'style', 'srcdoc']);

/**
 * Creates an element. `attrs`: attributes (`class`, `for`, `aria-*`, ...),
 * `on*` functions as listeners, `dataset` as an object; `null`/`false`
 * values are skipped. Children: nodes, strings (as text), arrays, nullish.
 */
export function h(tag, attrs, ...children) {
  // h('thead', row) reads as "no attributes, one child".
  if (attrs instanceof Node || typeof attrs === 'string' || Array.isArray(attrs)) {
    children.unshift(attrs);
    attrs = null;
  }
  const el = tag.startsWith('svg:')
    ? document.createElementNS('http://www.w3.org/2000/svg', tag.slice(4))
    : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value == null || value === false) continue;
    if (FORBIDDEN.has(key)) throw new Error(`h(): ${key} is not allowed`);
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (key === 'class') {
      el.setAttribute('class', Array.isArray(value) ? value.filter(Boolean).join(' ') : value);
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

/** Appends children (see `h`) to `el`. */
export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child == null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replaces all children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

let idCounter = 0;
/** A document-unique id for label/aria wiring. */
export function uid(prefix = 'id') {
  idCounter += 1;
  return `${prefix}-${idCounter}`;
}

const numberFormat = new Intl.NumberFormat('en-US');
export function fmtNumber(n) {
  return n == null ? '—' : numberFormat.format(n);
}

export function fmtBytes(n) {
  if (n == null) return '—';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export function plural(n, one, many = `${one}s`) {
  return `${fmtNumber(n)} ${n === 1 ? one : many}`;
}

/**
 * A lifetime in seconds as people say it: 86400 → "24 hours", 172800 →
 * "2 days", 5400 → "1 hour 30 minutes", 90 → "1 minute 30 seconds".
 * Null for a missing or negative value.
 */
export function fmtDuration(seconds) {
  if (typeof seconds !== 'number' || !Number.isFinite(seconds) || seconds < 0) return null;
  let s = Math.round(seconds);
  // Whole days from two days up ("24 hours" reads better than "1 day").
  if (s >= 172_800 && s % 86_400 === 0) return plural(s / 86_400, 'day');
  const parts = [];
  for (const [size, unit] of [[3600, 'hour'], [60, 'minute'], [1, 'second']]) {
    const n = Math.floor(s / size);
    s -= n * size;
    if (n) parts.push(plural(n, unit));
    if (parts.length === 2) break;
  }
  return parts.length ? parts.join(' ') : '0 seconds';
}

/** Splits a comma-separated multi-value input ("user.*, role.*"). */
export function splitList(text) {
  return String(text ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

/**
 * A labelled form field: `<label for>`, the control, an optional hint and
 * an error slot, wired together with aria-describedby so screen readers
 * read the hint and the error with the control.
 */
export function field({ id, label, control, hint, required = false, className }) {
  control.id = id;
  const hintEl = hint ? h('span', { class: 'hint', id: `${id}-hint` }, hint) : null;
  const errorEl = h('span', { class: 'field-error', id: `${id}-error` });
  control.setAttribute('aria-describedby', [hintEl?.id, errorEl.id].filter(Boolean).join(' '));
  if (required) control.required = true;
  return h(
    'div',
    { class: ['field', className] },
    h('label', { for: id }, label, required ? h('span', { class: 'required-mark', 'aria-hidden': 'true' }, ' *') : null),
    control,
    hintEl,
    errorEl,
  );
}

/** Shows (or clears, with an empty message) the error beside a control. */
export function setFieldError(control, message) {
  const slot = document.getElementById(`${control.id}-error`);
  if (slot) slot.textContent = message ?? '';
  // aria-invalid belongs on form controls, not on a group of radios.
  if (!control.matches('input, select, textarea')) return;
  if (message) control.setAttribute('aria-invalid', 'true');
  else control.removeAttribute('aria-invalid');
}

/** Clears every field error inside `root`. */
export function clearFieldErrors(root) {
  for (const el of root.querySelectorAll('[aria-invalid="true"]')) el.removeAttribute('aria-invalid');
  for (const el of root.querySelectorAll('.field-error')) el.textContent = '';
}

/** Sets text only when it changed, so polite live regions do not repeat. */
export function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

/** Remembers which control had focus (by data-focus-key) across a re-render. */
export function keepFocus(root, render) {
  const active = document.activeElement;
  const key = active && root.contains(active) ? active.dataset.focusKey : null;
  render();
  if (key) root.querySelector(`[data-focus-key="${CSS.escape(key)}"]`)?.focus();
}
