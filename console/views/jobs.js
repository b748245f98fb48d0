// Export jobs: state, progress, times, size, link, cancel and restart;
// who asked for each (admins see their whole organization's) and who gets
// the e-mail. Polls while some job is still running and stops as soon as
// none is, so an idle page sends no requests.

import { api, jobRunning, stateLabel } from '../api.js';
import { h, replace, setText, keepFocus, fmtNumber, fmtBytes, plural } from '../dom.js';
import { timeEl, displayZone, onZoneChange } from '../time.js';
import { describeJobFilters } from '../filters.js';
import { confirmDialog } from './confirm.js';

const POLL_MS = 1000;
const DAY_MS = 86_400_000;
// The API lists the newest jobs only (no cursor): ask for this many.
const LIST_LIMIT = 200;

// What a job's JSON does not say: the requester's name and e-mail (it has
// only the key, `user:<id>`) and the export options (CSV profile, time
// zone). The server audits every export as `audit_log.exported`, with the
// requester as actor, the job as target and the options in `details`, so
// one audit-log query over the days the listed jobs were created finds
// them. Best effort: without it a row shows the requester key.
const audited = new Map(); // job id -> { actor, details }

function utcDayOf(ms) {
  return new Date(ms).toISOString().slice(0, 10);
}

/**
 * Looks up the audit events of `jobs` not seen yet; true when some were
 * found. `misses` counts the lookups that did not find a job (the event is
 * written just after the job, so one miss may be a race; three are not).
 */
async function lookUpExports(jobs, misses) {
  const missing = jobs.filter((j) => !audited.has(j.id) && (misses.get(j.id) ?? 0) < 3);
  if (!missing.length) return false;
  const created = missing.map((j) => Date.parse(j.created_at)).filter(Number.isFinite);
  if (!created.length) return false;
  // The event is written just after the job, maybe past midnight; the API
  // reads at most 366 whole days.
  const last = Math.max(...created) + DAY_MS;
  const first = Math.max(Math.min(...created), last - 365 * DAY_MS);
  const wanted = new Set(missing.map((j) => j.id));
  let found = false;
  let cursor = null;
  // Oldest first, 1,000 a page; a few pages at most.
  for (let pages = 0; pages < 5 && wanted.size; pages += 1) {
    const page = await api.auditLogs({
      from: utcDayOf(first),
      to: utcDayOf(last),
      action: 'audit_log.exported',
      target_type: 'audit_export',
      limit: 1000,
      cursor,
    });
    for (const e of page.data ?? []) {
      const id = e.target?.id;
      if (!id || audited.has(id)) continue;
      audited.set(id, { actor: e.actor ?? null, details: e.details ?? {} });
      wanted.delete(id);
      found = true;
    }
    cursor = page.next_cursor;
    if (!cursor) break;
  }
  for (const j of missing) if (!audited.has(j.id)) misses.set(j.id, (misses.get(j.id) ?? 0) + 1);
  return found;
}

/** "readable profile · times in Europe/Paris", from the audited options. */
function optionsText(j) {
  const d = audited.get(j.id)?.details;
  if (!d) return null;
  const parts = [];
  if (j.format === 'csv' && d.csv_profile) parts.push(`${d.csv_profile} profile`);
  if (Array.isArray(d.fields) && d.fields.length) parts.push(plural(d.fields.length, 'field'));
  if (d.timezone) parts.push(`times in ${d.timezone}`);
  if (d.redacted === false) parts.push('not redacted');
  return parts.length ? parts.join(' · ') : null;
}

function linkValid(job) {
  return job.state === 'completed' && job.download_url && (!job.expires_at || Date.parse(job.expires_at) > Date.now());
}

export function mount(main, ctx) {
  let jobs = [];
  let timer = 0;
  let alive = true;
  let loadedOnce = false;
  let seq = 0; // only the newest load may schedule the next poll
  const running = new Set();
  const misses = new Map(); // job id -> lookups that did not find its audit event
  const mineKey = `user:${ctx.me.id}`;
  let lookingUp = false;
  let expiryTimer = 0; // re-renders when a shown link expires

  const status = h('p', { id: 'jobs-status', role: 'status', 'aria-live': 'polite' });
  const error = h('p', { class: 'notice notice-error', role: 'alert' });
  const refresh = h('button', { type: 'button', class: 'btn', id: 'jobs-refresh', onclick: () => load() }, 'Refresh');
  const timeHead = h('th', { scope: 'col' });
  const tbody = h('tbody');
  const table = h(
    'table',
    { class: 'data stack', id: 'jobs-table' },
    h('caption', { class: 'visually-hidden' }, 'Export jobs, newest first'),
    h(
      'thead',
      h(
        'tr',
        timeHead,
        h('th', { scope: 'col' }, 'Export'),
        h('th', { scope: 'col' }, 'Requested by'),
        h('th', { scope: 'col' }, 'State'),
        h('th', { scope: 'col' }, 'Progress'),
        h('th', { scope: 'col' }, 'Completed'),
        h('th', { scope: 'col' }, 'Size'),
        h('th', { scope: 'col' }, 'Link'),
        h('th', { scope: 'col' }, 'Actions'),
      ),
    ),
    tbody,
  );

  replace(
    main,
    h('h1', null, 'Export jobs'),
    h(
      'section',
      { class: 'panel', 'aria-labelledby': 'jobs-title' },
      h(
        'div',
        { class: 'panel-head' },
        h('h2', { id: 'jobs-title' }, ctx.me.role === 'admin' ? 'Exports of your organization' : 'Your exports'),
        refresh,
      ),
      status,
      error,
      h('div', { class: 'table-wrap' }, table),
    ),
  );

  async function load() {
    clearTimeout(timer);
    const mine = ++seq;
    try {
      const answer = await api.jobs({ limit: LIST_LIMIT });
      if (!alive || mine !== seq) return;
      error.textContent = '';
      jobs = answer.data;
      // A job that just ended has produced a notification.
      const stillRunning = new Set(jobs.filter(jobRunning).map((j) => j.id));
      if ([...running].some((id) => !stillRunning.has(id))) ctx.bell?.refresh();
      running.clear();
      for (const id of stillRunning) running.add(id);
      loadedOnce = true;
      render();
      if (!lookingUp) {
        lookingUp = true;
        const listed = jobs;
        lookUpExports(listed, misses)
          .then((found) => {
            if (found && alive) render();
          })
          .catch(() => {
            // Names stay as keys; the jobs themselves are shown.
            for (const j of listed) if (!audited.has(j.id)) misses.set(j.id, 3);
          })
          .finally(() => {
            lookingUp = false;
          });
      }
    } catch (err) {
      if (!alive || mine !== seq) return;
      error.textContent = `The jobs could not be loaded: ${err.message}`;
    }
    if (alive && running.size) timer = setTimeout(load, POLL_MS);
    status.dataset.polling = String(alive && running.size > 0);
  }

  function render() {
    timeHead.textContent = `Created (${displayZone()})`;
    const n = running.size;
    const capped = jobs.length >= LIST_LIMIT ? ` (the ${fmtNumber(LIST_LIMIT)} newest)` : '';
    setText(
      status,
      !loadedOnce
        ? 'Loading jobs…'
        : n
          ? `${plural(n, 'export')} running; this list updates every second.`
          : `${plural(jobs.length, 'job')}${capped}; none running, so the list is not refreshing.`,
    );
    // A link shown as valid must disappear when it expires, even on an idle page.
    clearTimeout(expiryTimer);
    const next = Math.min(...jobs.filter(linkValid).map((j) => Date.parse(j.expires_at)).filter(Number.isFinite));
    if (Number.isFinite(next)) expiryTimer = setTimeout(() => alive && render(), Math.min(Math.max(next - Date.now(), 0) + 500, 2 ** 31 - 1));
    keepFocus(tbody, () =>
      replace(tbody, jobs.length ? jobs.map(row) : h('tr', null, h('td', { colspan: 9, class: 'empty' }, 'No exports yet. Start one from the audit log with Export.'))),
    );
  }

  function row(j) {
    const done = j.progress?.exported ?? 0;
    const total = j.progress?.estimated ?? j.record_count ?? 0;
    const max = Math.max(total, 1);
    const canAct = ctx.me.can_export && jobRunning(j);
    return h(
      'tr',
      { dataset: { jobId: j.id, state: j.state } },
      h('td', { class: 'when', 'data-label': `Created (${displayZone()})` }, timeEl(j.created_at)),
      h(
        'td',
        { 'data-label': 'Export' },
        h('strong', null, j.format.toUpperCase()),
        ' ',
        describeJobFilters(j.filters),
        optionsText(j) ? h('span', { class: 'sub job-options' }, optionsText(j)) : null,
        j.schedule ? h('span', { class: 'sub' }, `Scheduled: ${j.schedule.name}${j.schedule.manual ? ' (run now)' : ''}`) : null,
        h('span', { class: 'sub mono' }, j.id),
      ),
      requesterCell(j),
      h(
        'td',
        { 'data-label': 'State' },
        h('span', { class: ['badge', `badge-${j.state}`] }, stateLabel(j.state)),
        j.cancel_requested && jobRunning(j) ? h('span', { class: 'sub' }, 'Cancelling…') : null,
        j.restart_requested && jobRunning(j) ? h('span', { class: 'sub' }, 'Restarting…') : null,
        j.attempt > 1 ? h('span', { class: 'sub' }, `Attempt ${j.attempt} of ${j.max_attempts}`) : null,
        j.error ? h('span', { class: 'sub' }, j.error.message || j.error.code) : null,
      ),
      h(
        'td',
        { 'data-label': 'Progress' },
        h('progress', { max, value: Math.min(j.state === 'completed' ? max : done, max), 'aria-label': `Progress of export ${j.id}` }),
        h('span', { class: 'progress-text' }, `${fmtNumber(done)} / ${fmtNumber(total)}`),
      ),
      h('td', { class: 'when', 'data-label': 'Completed' }, timeEl(j.completed_at)),
      h('td', { 'data-label': 'Size' }, j.file ? fmtBytes(j.file.size) : '—', j.record_count != null ? h('span', { class: 'sub' }, plural(j.record_count, 'record')) : null),
      h(
        'td',
        { 'data-label': 'Link' },
        linkValid(j)
          ? [h('a', { href: j.download_url, download: j.file?.name ?? '', class: 'download-link', dataset: { focusKey: `dl-${j.id}` } }, 'Download'), h('span', { class: 'sub' }, 'until ', timeEl(j.expires_at))]
          : h('span', { class: 'muted' }, j.state !== 'completed' ? '—' : j.file ? 'Link expired' : 'No events matched'),
        recipientsLine(j),
      ),
      h(
        'td',
        { 'data-label': 'Actions' },
        canAct
          ? h(
              'div',
              { class: 'btn-row' },
              h('button', { type: 'button', class: 'btn btn-small btn-danger', dataset: { action: 'cancel', focusKey: `cancel-${j.id}` }, 'aria-label': `Cancel export ${j.id}`, onclick: () => cancel(j) }, 'Cancel'),
              h('button', { type: 'button', class: 'btn btn-small', dataset: { action: 'restart', focusKey: `restart-${j.id}` }, 'aria-label': `Restart export ${j.id}`, onclick: () => restart(j) }, 'Restart'),
            )
          : h('span', { class: 'muted' }, '—'),
      ),
    );
  }

  /** Who asked: you, a schedule, a named user of the organization. */
  function requesterCell(j) {
    const key = j.requester ?? '';
    const actor = audited.get(j.id)?.actor;
    let name;
    let sub = null;
    if (key === mineKey) {
      name = [ctx.me.name || ctx.me.email, h('span', { class: 'you' }, ' (you)')];
    } else if (key.startsWith('schedule:')) {
      name = `Schedule ${key.slice('schedule:'.length)}`;
    } else if (actor?.name || actor?.email) {
      name = actor.name || actor.email;
      sub = actor.name ? actor.email : null;
    } else {
      const id = key.match(/^user:(\d+)$/);
      name = id ? `User ${id[1]}` : key || '—';
    }
    return h(
      'td',
      { class: 'job-requester', 'data-label': 'Requested by', dataset: { requester: key }, title: key || null },
      h('span', { class: 'requester-name' }, name),
      sub ? h('span', { class: 'sub' }, sub) : null,
    );
  }

  /** Where the e-mail goes (or went): the job's `recipients`. */
  function recipientsLine(j) {
    const to = Array.isArray(j.recipients) ? j.recipients : null;
    if (!to) return null;
    if (!to.length) return h('span', { class: 'sub job-recipients', dataset: { recipients: '' } }, 'Not e-mailed (no recipient)');
    const label = jobRunning(j) ? 'To be e-mailed to ' : j.state === 'completed' && j.file ? 'Link e-mailed to ' : 'Notice e-mailed to ';
    return h('span', { class: 'sub job-recipients', dataset: { recipients: to.join(',') } }, label, h('span', { class: 'addresses' }, to.join(', ')));
  }

  async function cancel(j) {
    const yes = await confirmDialog({
      title: 'Cancel this export?',
      message: `The ${j.format.toUpperCase()} export ${describeJobFilters(j.filters)} stops and produces no file.`,
      confirmLabel: 'Cancel export',
      cancelLabel: 'Keep it running',
      danger: true,
    });
    if (!yes || !alive) return;
    try {
      await api.cancelJob(j.id);
      ctx.toast('Cancellation requested.');
    } catch (err) {
      ctx.toast(err.code === 'not_in_progress' ? 'That export had already finished.' : err.message);
    }
    load();
  }

  async function restart(j) {
    const yes = await confirmDialog({
      title: 'Restart this export?',
      message: `The ${j.format.toUpperCase()} export ${describeJobFilters(j.filters)} runs again from the beginning.`,
      confirmLabel: 'Restart export',
      cancelLabel: 'Keep it running',
    });
    if (!yes || !alive) return;
    try {
      await api.restartJob(j.id);
      ctx.toast('Restart requested.');
    } catch (err) {
      ctx.toast(err.code === 'not_in_progress' ? 'That export had already finished.' : err.message);
    }
    load();
  }

  const unsubscribe = onZoneChange(render);
  render();
  load();
  return () => {
    alive = false;
    clearTimeout(timer);
    clearTimeout(expiryTimer);
    unsubscribe();
  };
}
