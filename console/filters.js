// The audit-log filters, shared by the viewer and the export dialog so
// both offer the same fields with the same names, hints and checks.

import { h, field, splitList, setFieldError } from './dom.js';
import { isDay, fmtTime } from './time.js';

/** Optional filters: API body name, query parameter, label, hint. */
export const OPTIONAL_FILTERS = [
  { key: 'actors', param: 'actor', label: 'Actor', hint: 'User id or e-mail; commas between several', multi: true },
  { key: 'actions', param: 'action', label: 'Action', hint: 'Exact (user.login) or prefix (user.*)', multi: true },
  { key: 'target_type', param: 'target_type', label: 'Target type', hint: 'For example user, role, api_token' },
  { key: 'target_id', param: 'target_id', label: 'Target ID', hint: 'Needs a target type' },
  { key: 'streams', param: 'stream', label: 'Stream', hint: 'For example audit, scim', multi: true },
  { key: 'q', param: 'q', label: 'Text', hint: 'Words anywhere in the event' },
];

export function emptyFilters(from, to) {
  return { from, to, actors: [], actions: [], target_type: '', target_id: '', streams: [], q: '' };
}

/**
 * Builds the date-range and optional filter controls with ids under
 * `prefix`. Returns the field nodes and a map from filter key to control.
 */
export function filterControls(prefix, state) {
  const controls = {};
  const input = (key, type, value) => {
    const el = h('input', { type, name: key, autocomplete: 'off', spellcheck: 'false' });
    el.value = value ?? '';
    controls[key] = el;
    return el;
  };
  const range = [
    field({ id: `${prefix}-from`, label: 'From', control: input('from', 'date', state.from), required: true }),
    field({
      id: `${prefix}-to`,
      label: 'To',
      control: input('to', 'date', state.to),
      required: true,
      hint: 'Included: the whole To day counts',
    }),
  ];
  const optional = OPTIONAL_FILTERS.map((f) => {
    const value = f.multi ? (state[f.key] ?? []).join(', ') : state[f.key];
    return field({ id: `${prefix}-${f.key.replace('_', '-')}`, label: f.label, control: input(f.key, 'text', value), hint: f.hint });
  });
  return { range, optional, controls };
}

/** The filter state the controls hold now. */
export function readFilters(controls) {
  const state = { from: controls.from.value, to: controls.to.value };
  for (const f of OPTIONAL_FILTERS) {
    const raw = controls[f.key].value;
    state[f.key] = f.multi ? splitList(raw) : raw.trim();
  }
  return state;
}

/**
 * Checks done before any request: both dates, and From not after To.
 * Returns [{field, message}] (empty when fine).
 */
export function checkRange(state) {
  const problems = [];
  if (!state.from) problems.push({ field: 'from', message: 'Choose the first day (From).' });
  else if (!isDay(state.from)) problems.push({ field: 'from', message: 'Enter From as a date (YYYY-MM-DD).' });
  if (!state.to) problems.push({ field: 'to', message: 'Choose the last day (To).' });
  else if (!isDay(state.to)) problems.push({ field: 'to', message: 'Enter To as a date (YYYY-MM-DD).' });
  if (problems.length === 0 && state.from > state.to) {
    problems.push({ field: 'to', message: 'From is after To: the To date must be on or after the From date.' });
  }
  return problems;
}

/** Query parameters of GET /api/v1/audit-logs. */
export function toQuery(state) {
  const q = { from: state.from, to: state.to };
  for (const f of OPTIONAL_FILTERS) {
    const v = state[f.key];
    if (f.multi ? v.length : v) q[f.param] = v;
  }
  return q;
}

/** The `filters` object of the export endpoints (empty values left out). */
export function toApiFilters(state) {
  const out = { from: state.from, to: state.to };
  for (const f of OPTIONAL_FILTERS) {
    const v = state[f.key];
    if (f.multi ? v.length : v) out[f.key] = v;
  }
  return out;
}

/** How many optional filters are set (for "2 filters" summaries). */
export function activeCount(state) {
  return OPTIONAL_FILTERS.filter((f) => (f.multi ? state[f.key]?.length : state[f.key])).length;
}

/**
 * Puts an API error beside the control its `field` names; returns false
 * when no control matches (the caller shows it at form level).
 */
export function showApiFieldError(controls, err) {
  const key = err.field;
  const control = key ? controls[key] : null;
  if (!control) return false;
  setFieldError(control, err.message);
  return true;
}

function utcMidnight(iso) {
  return typeof iso === 'string' && /T00:00:00(\.0+)?Z$/.test(iso);
}

/**
 * One line describing a job's stored filters (`from`, `to_exclusive`, ...):
 * whole days as "2025-07-01 → 2025-07-31" (the last day included), other
 * bounds as times in the display zone.
 */
export function describeJobFilters(f) {
  if (!f) return '';
  let range;
  if (utcMidnight(f.from) && utcMidnight(f.to_exclusive)) {
    const last = new Date(Date.parse(f.to_exclusive) - 86_400_000).toISOString().slice(0, 10);
    range = `${f.from.slice(0, 10)} → ${last}`;
  } else {
    range = `${fmtTime(f.from)} → before ${fmtTime(f.to_exclusive)}`;
  }
  const parts = [range];
  if (f.actions?.length) parts.push(`actions ${f.actions.join(', ')}`);
  if (f.actors?.length) parts.push(`actors ${f.actors.join(', ')}`);
  if (f.streams?.length) parts.push(`streams ${f.streams.join(', ')}`);
  if (f.target_type) parts.push(`target ${f.target_type}${f.target_id ? ` ${f.target_id}` : ''}`);
  if (f.q) parts.push(`text “${f.q}”`);
  return parts.join(' · ');
}
