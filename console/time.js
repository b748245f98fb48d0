// Times: shown in the browser's zone by default, or in UTC when the user
// flips the toggle (a preference, so it is kept in localStorage). Date
// filters are whole UTC days, as the API reads them.

import { h } from './dom.js';

const UTC_KEY = 'audit-export.utc';
const listeners = new Set();

export const browserZone = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';

export function useUtc() {
  return localStorage.getItem(UTC_KEY) === '1';
}

export function setUseUtc(on) {
  localStorage.setItem(UTC_KEY, on ? '1' : '0');
  for (const fn of listeners) fn();
}

/** Calls `fn` when the display zone changes; returns the unsubscriber. */
export function onZoneChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export function displayZone() {
  return useUtc() ? 'UTC' : browserZone;
}

const formatters = new Map();
function formatter(zone) {
  if (!formatters.has(zone)) {
    formatters.set(
      zone,
      new Intl.DateTimeFormat('en-CA', {
        timeZone: zone,
        year: 'numeric',
        month: '2-digit',
        day: '2-digit',
        hour: '2-digit',
        minute: '2-digit',
        second: '2-digit',
        hourCycle: 'h23',
        timeZoneName: 'short',
      }),
    );
  }
  return formatters.get(zone);
}

/** "2025-07-01 16:10:46 GMT+2" in the display zone; '—' for nothing. */
export function fmtTime(value) {
  if (value == null || value === '') return '—';
  const d = value instanceof Date ? value : new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  const p = Object.fromEntries(formatter(displayZone()).formatToParts(d).map((x) => [x.type, x.value]));
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second} ${p.timeZoneName}`;
}

/** A <time> element: the formatted time, the exact instant in datetime/title. */
export function timeEl(value) {
  if (value == null || value === '') return h('span', { class: 'muted' }, '—');
  const d = new Date(value);
  const iso = Number.isNaN(d.getTime()) ? String(value) : d.toISOString();
  return h('time', { datetime: iso, title: iso }, fmtTime(value));
}

/** Today as YYYY-MM-DD in UTC, shifted by `days`. */
export function utcDay(days = 0) {
  const d = new Date();
  d.setUTCDate(d.getUTCDate() + days);
  return d.toISOString().slice(0, 10);
}

export function isDay(s) {
  return /^\d{4}-\d{2}-\d{2}$/.test(s) && !Number.isNaN(Date.parse(`${s}T00:00:00Z`));
}
