// Scheduled exports: definition, next fires, last run. Admins can run one
// now and reload the folder; they also see files that failed to load.

import { api } from '../api.js';
import { h, replace, setText, plural } from '../dom.js';
import { timeEl, onZoneChange } from '../time.js';

export function mount(main, ctx) {
  const admin = ctx.me.role === 'admin';
  let alive = true;
  let data = null;

  const status = h('p', { id: 'schedules-status', role: 'status', 'aria-live': 'polite' }, 'Loading schedules…');
  const error = h('p', { class: 'notice notice-error', role: 'alert' });
  const list = h('div', { class: 'cards', id: 'schedule-list' });
  const invalid = h('div', { id: 'schedule-invalid' });
  const reload = admin
    ? h('button', { type: 'button', class: 'btn', id: 'schedules-reload', onclick: doReload }, 'Reload from files')
    : null;

  replace(
    main,
    h('h1', null, 'Scheduled exports'),
    h(
      'section',
      { class: 'panel', 'aria-labelledby': 'schedules-title' },
      h('div', { class: 'panel-head' }, h('h2', { id: 'schedules-title' }, 'Schedules of your organization'), reload),
      status,
      error,
      list,
    ),
    invalid,
  );

  async function load() {
    try {
      data = await api.schedules();
      if (!alive) return;
      error.textContent = '';
      render();
    } catch (err) {
      if (!alive) return;
      setText(status, '');
      error.textContent = err.status === 403 ? 'Only administrators and compliance officers can see schedules.' : err.message;
    }
  }

  async function doReload() {
    reload.disabled = true;
    try {
      const answer = await api.reloadSchedules();
      if (!alive) return;
      data = answer;
      render();
      ctx.toast(`Reloaded: ${plural(answer.reloaded ?? answer.data.length, 'schedule')} loaded.`);
    } catch (err) {
      if (alive) error.textContent = err.message;
    } finally {
      reload.disabled = false;
    }
  }

  function render() {
    if (!data) return;
    setText(status, data.data.length ? `${plural(data.data.length, 'schedule')}.` : 'No scheduled exports are configured for your organization.');
    replace(list, data.data.map(card));
    const problems = data.invalid ?? [];
    replace(
      invalid,
      problems.length
        ? h(
            'section',
            { class: 'panel', 'aria-labelledby': 'invalid-title' },
            h('h2', { id: 'invalid-title' }, 'Files with problems'),
            h(
              'ul',
              { class: 'plain' },
              problems.map((p) =>
                h(
                  'li',
                  { class: 'notice notice-warn' },
                  h('strong', null, p.name || p.file),
                  ` (${p.file}): `,
                  p.reason,
                  p.field ? ` [field ${p.field}, ${p.code}]` : ` [${p.code}]`,
                  h('span', { class: 'sub' }, p.last_good_version_in_effect ? 'The last valid version stays in effect.' : 'This schedule is not running.'),
                ),
              ),
            ),
          )
        : null,
    );
  }

  function card(s) {
    const slug = s.name.replace(/[^A-Za-z0-9_-]/g, '-');
    const titleId = `schedule-${slug}-title`;
    const message = h('p', { class: 'notice notice-info', role: 'status', id: `schedule-${slug}-message` });
    const run = admin
      ? h('button', { type: 'button', class: 'btn btn-primary run-now', 'aria-describedby': titleId, dataset: { schedule: s.name } }, 'Run now')
      : null;
    run?.addEventListener('click', async () => {
      run.disabled = true;
      message.className = 'notice notice-info';
      message.textContent = 'Starting…';
      try {
        const job = await api.runSchedule(s.name);
        message.className = 'notice notice-ok';
        replace(message, `Started export job ${job.id}. `, h('a', { href: '#/jobs' }, 'Follow it on the Jobs page'), '.');
      } catch (err) {
        message.className = 'notice notice-error';
        message.textContent = err.code === 'duplicate_export' ? `A run of ${s.name} is already in progress.` : err.message;
      } finally {
        run.disabled = false;
      }
    });
    const last = s.last_run;
    return h(
      'article',
      { class: 'card', 'aria-labelledby': titleId, dataset: { schedule: s.name } },
      h(
        'div',
        { class: 'panel-head' },
        h('h3', { id: titleId }, s.name),
        h('span', { class: ['badge', s.enabled ? 'badge-completed' : 'badge-expired'] }, s.enabled ? 'Enabled' : 'Disabled'),
      ),
      h(
        'dl',
        { class: 'props' },
        h('dt', null, 'When'),
        h('dd', null, h('code', null, s.schedule), ` (${s.timezone})`),
        h('dt', null, 'Range'),
        h('dd', null, String(s.range).replace(/_/g, ' ')),
        h('dt', null, 'Format'),
        h('dd', null, String(s.format).toUpperCase()),
        h('dt', null, 'Recipients'),
        h('dd', null, s.recipients?.length ? s.recipients.join(', ') : '—'),
        h('dt', null, 'Catch-up'),
        h('dd', null, String(s.catch_up ?? '—')),
        s.archive ? [h('dt', null, 'Archive'), h('dd', null, h('code', null, s.archive))] : null,
        h('dt', null, 'Next runs'),
        h(
          'dd',
          null,
          s.next_fires?.length
            ? h('ul', { class: 'plain next-fires' }, s.next_fires.map((t) => h('li', null, timeEl(t))))
            : s.enabled
              ? '—'
              : 'None (disabled)',
        ),
        h('dt', null, 'Last run'),
        h(
          'dd',
          { class: 'last-run' },
          last
            ? [
                h('span', { class: 'badge' }, last.status),
                ' ',
                timeEl(last.at ?? last.fire_time),
                last.manual ? ' (run now)' : null,
                last.reason ? h('span', { class: 'sub' }, last.reason) : null,
                last.job_id ? h('span', { class: 'sub' }, `Job ${last.job_id}${last.job_state ? `: ${last.job_state}` : ''}`) : null,
              ]
            : 'Never',
        ),
      ),
      run ? h('div', { class: 'btn-row' }, run) : null,
      message,
    );
  }

  const unsubscribe = onZoneChange(render);
  load();
  return () => {
    alive = false;
    unsubscribe();
  };
}
