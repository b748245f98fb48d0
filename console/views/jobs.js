// Export jobs: state, progress, times, size, link, cancel and restart.
// Polls while some job is still running and stops as soon as none is, so
// an idle page sends no requests.

import { api, jobRunning, stateLabel } from '../api.js';
import { h, replace, setText, keepFocus, fmtNumber, fmtBytes, plural } from '../dom.js';
import { timeEl, displayZone, onZoneChange } from '../time.js';
import { describeJobFilters } from '../filters.js';
import { confirmDialog } from './confirm.js';

const POLL_MS = 1000;

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
        h('th', { scope: 'col' }, 'State'),
        h('th', { scope: 'col' }, 'Progress'),
        h('th', { scope: 'col' }, 'Completed'),
        h('th', { scope: 'col' }, 'Size'),
        h('th', { scope: 'col' }, 'Download'),
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
      const answer = await api.jobs();
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
    setText(
      status,
      !loadedOnce
        ? 'Loading jobs…'
        : n
          ? `${plural(n, 'export')} running; this list updates every second.`
          : `${plural(jobs.length, 'job')}; none running, so the list is not refreshing.`,
    );
    keepFocus(tbody, () =>
      replace(tbody, jobs.length ? jobs.map(row) : h('tr', null, h('td', { colspan: 8, class: 'empty' }, 'No exports yet. Start one from the audit log with Export.'))),
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
      h('td', { class: 'nowrap', 'data-label': `Created (${displayZone()})` }, timeEl(j.created_at)),
      h(
        'td',
        { 'data-label': 'Export' },
        h('strong', null, j.format.toUpperCase()),
        ' ',
        describeJobFilters(j.filters),
        j.schedule ? h('span', { class: 'sub' }, `Scheduled: ${j.schedule.name}${j.schedule.manual ? ' (run now)' : ''}`) : null,
        h('span', { class: 'sub mono' }, j.id),
      ),
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
      h('td', { class: 'nowrap', 'data-label': 'Completed' }, timeEl(j.completed_at)),
      h('td', { 'data-label': 'Size' }, j.file ? fmtBytes(j.file.size) : '—', j.record_count != null ? h('span', { class: 'sub' }, plural(j.record_count, 'record')) : null),
      h(
        'td',
        { 'data-label': 'Download' },
        linkValid(j)
          ? [h('a', { href: j.download_url, download: j.file?.name ?? '', class: 'download-link', dataset: { focusKey: `dl-${j.id}` } }, 'Download'), h('span', { class: 'sub' }, 'until ', timeEl(j.expires_at))]
          : h('span', { class: 'muted' }, j.state !== 'completed' ? '—' : j.file ? 'Link expired' : 'No events matched'),
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
    unsubscribe();
  };
}
