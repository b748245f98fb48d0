// The export dialog (UC-308 layout): date range, the viewer's filters,
// format, CSV profile, time zone, a debounced estimate, the e-mail field.
// The server decides sync or async: a small export comes back as the file
// (downloaded here), a large one as a job (the "Export in progress" panel,
// which follows the job until its link is ready).

import { api, jobRunning, stateLabel } from '../api.js';
import { h, replace, field, setFieldError, clearFieldErrors, setText, fmtNumber, fmtBytes, fmtDuration, plural, splitList } from '../dom.js';
import { filterControls, readFilters, checkRange, toApiFilters, showApiFieldError } from '../filters.js';
import { browserZone, fmtTime, timeEl } from '../time.js';
import { confirmDialog } from './confirm.js';

const ESTIMATE_DELAY_MS = 400;
const POLL_MS = 1000;

const FORMATS = [
  { value: 'csv', label: 'CSV', hint: 'Spreadsheet compatible' },
  { value: 'json', label: 'JSON', hint: 'Structured data, one array' },
  { value: 'jsonl', label: 'JSONL', hint: 'One JSON event per line' },
];
const PROFILES = [
  { value: 'raw', label: 'Raw', hint: 'Every field, JSON columns as JSON' },
  { value: 'readable', label: 'Readable', hint: 'Flattened, for people' },
];

let current = null; // the open dialog's teardown

/** Opens the export dialog prefilled with `filters` (the viewer's). */
export function openExportDialog(ctx, filters) {
  current?.();
  const dialog = h('dialog', { id: 'export-dialog', 'aria-labelledby': 'export-title' });
  document.body.append(dialog);
  let timers = [];
  let closed = false;
  const later = (fn, ms) => {
    const t = setTimeout(() => {
      if (!closed) fn();
    }, ms);
    timers.push(t);
    return t;
  };
  const teardown = () => {
    closed = true;
    for (const t of timers) clearTimeout(t);
    timers = [];
    if (dialog.open) dialog.close();
    dialog.remove();
    if (current === teardown) current = null;
  };
  current = teardown;
  dialog.addEventListener('close', () => {
    closed = true;
    for (const t of timers) clearTimeout(t);
    // Removed on the next turn, after the browser has restored focus.
    setTimeout(() => dialog.remove(), 0);
    if (current === teardown) current = null;
  });
  renderForm({ ctx, dialog, later, isClosed: () => closed }, filters);
  dialog.showModal();
  dialog.querySelector('#exp-from')?.focus();
}

function radios(name, options, checked, idPrefix) {
  return h(
    'div',
    { class: 'choices' },
    options.map((o) =>
      h(
        'div',
        { class: 'choice' },
        h('input', { type: 'radio', name, value: o.value, id: `${idPrefix}-${o.value}`, checked: o.value === checked }),
        h('label', { for: `${idPrefix}-${o.value}` }, h('strong', null, o.label), h('span', { class: 'hint' }, o.hint)),
      ),
    ),
  );
}

function timeZones() {
  try {
    const zones = Intl.supportedValuesOf('timeZone');
    return zones.includes('UTC') ? zones : ['UTC', ...zones];
  } catch {
    return ['UTC', browserZone];
  }
}

function renderForm(env, filters) {
  const { ctx, dialog, later, isClosed } = env;
  const me = ctx.me;
  const { range, optional, controls } = filterControls('exp', filters);

  const tz = h('input', { type: 'text', list: 'exp-tz-list', autocomplete: 'off', spellcheck: 'false' });
  tz.value = browserZone;
  const email = h('input', { type: 'email', multiple: true, autocomplete: 'email', placeholder: 'name@example.com' });
  email.value = me.email_verified ? me.email : '';
  controls.timezone = tz;
  controls.email_to = email;

  const formatSet = h(
    'fieldset',
    { id: 'exp-format' },
    h('legend', null, 'Export format ', h('span', { class: 'required-mark', 'aria-hidden': 'true' }, '*')),
    radios('format', FORMATS, 'csv', 'exp-format'),
    h('span', { class: 'field-error', id: 'exp-format-error' }),
  );
  const profileSet = h(
    'fieldset',
    { id: 'exp-profile' },
    h('legend', null, 'CSV profile'),
    radios('profile', PROFILES, 'raw', 'exp-profile'),
    h('span', { class: 'field-error', id: 'exp-profile-error' }),
  );
  // Errors about a radio group go beside the group.
  controls.format = formatSet;
  controls['csv.profile'] = profileSet;
  controls.csv = profileSet;

  // The link lifetime comes with the estimate (link_ttl_seconds).
  const lifetimeNote = h('span', { id: 'exp-lifetime-note' });
  const estimateValue = h('strong', { id: 'exp-estimate-count' }, '—');
  const estimateNote = h('span', { class: 'muted', id: 'exp-estimate-note' }, '');
  const estimate = h(
    'div',
    { class: 'estimate', id: 'exp-estimate', role: 'status', 'aria-live': 'polite', 'aria-atomic': 'true' },
    h('span', null, 'Estimated records:'),
    estimateValue,
    estimateNote,
  );
  const formError = h('div', { class: 'notice notice-error', id: 'exp-error', role: 'alert' });
  const formInfo = h('div', { class: 'notice notice-warn', id: 'exp-warning', role: 'status' });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary', id: 'exp-submit' }, 'Export');
  const cancel = h('button', { type: 'button', class: 'btn', id: 'exp-cancel', onclick: () => dialog.close() }, 'Cancel');

  const form = h(
    'form',
    { novalidate: true, id: 'export-form' },
    h('div', { class: 'dialog-head' }, h('h2', { id: 'export-title' }, 'Export audit logs')),
    h(
      'div',
      { class: 'dialog-body' },
      h(
        'fieldset',
        null,
        h('legend', null, 'Date range ', h('span', { class: 'required-mark', 'aria-hidden': 'true' }, '*'), h('span', { class: 'visually-hidden' }, '(required)')),
        h('div', { class: 'form-grid' }, range),
        h('p', { class: 'hint' }, 'Whole days in UTC. At most one year per export.'),
      ),
      h(
        'fieldset',
        null,
        h('legend', null, 'Filters (optional)'),
        h('div', { class: 'form-grid' }, optional),
      ),
      h('div', { class: 'pair' }, formatSet, profileSet),
      h('datalist', { id: 'exp-tz-list' }, timeZones().map((z) => h('option', { value: z }))),
      field({ id: 'exp-timezone', label: 'Time zone of the timestamps', control: tz, hint: 'IANA name, for example Europe/Paris or UTC', className: 'narrow' }),
      h('p', { class: 'notice notice-info', id: 'exp-large-note' }, 'Note: large exports run in the background and are e-mailed when complete.', lifetimeNote),
      field({
        id: 'exp-email',
        label: 'E-mail to (for large exports)',
        control: email,
        className: 'narrow',
        hint: me.email_verified
          ? 'Verified addresses of your organization; commas between several'
          : 'Your address is not verified: name a verified address to get the link by e-mail',
      }),
      formInfo,
      formError,
    ),
    // The estimate sits beside Export so it stays in view while filters change.
    h('div', { class: 'dialog-foot' }, estimate, h('div', { class: 'btn-row' }, cancel, submit)),
  );

  const selected = (name) => form.querySelector(`input[name="${name}"]:checked`)?.value;
  const syncProfile = () => {
    profileSet.hidden = selected('format') !== 'csv';
  };
  syncProfile();

  // Estimates follow the filters, debounced; stale answers are dropped.
  let estimateSeq = 0;
  let estimateTimer = 0;
  const filterKeys = new Set(['from', 'to', 'actors', 'actions', 'target_type', 'target_id', 'streams', 'q']);
  function scheduleEstimate() {
    clearTimeout(estimateTimer);
    // The number on screen no longer matches the filters: mark it stale
    // (aria-busy holds the live region's announcement until the answer).
    estimate.setAttribute('aria-busy', 'true');
    estimate.classList.add('stale');
    delete estimateValue.dataset.count;
    estimateTimer = later(runEstimate, ESTIMATE_DELAY_MS);
  }
  function settled() {
    estimate.removeAttribute('aria-busy');
    estimate.classList.remove('stale');
  }
  async function runEstimate() {
    const mine = ++estimateSeq;
    const state = readFilters(controls);
    for (const key of filterKeys) setFieldError(controls[key], '');
    const problems = checkRange(state);
    if (problems.length) {
      // Nothing is sent for a range that cannot be right.
      for (const p of problems) setFieldError(controls[p.field], p.message);
      estimateValue.textContent = '—';
      setText(estimateNote, 'Fix the date range to see an estimate.');
      settled();
      return;
    }
    estimate.setAttribute('aria-busy', 'true');
    delete estimateValue.dataset.count;
    setText(estimateNote, 'Estimating…');
    try {
      const r = await api.estimate(toApiFilters(state));
      if (mine !== estimateSeq || isClosed()) return;
      settled();
      estimateValue.textContent = fmtNumber(r.record_count);
      estimateValue.dataset.count = String(r.record_count);
      estimateValue.dataset.mode = r.mode;
      const ttl = fmtDuration(r.link_ttl_seconds);
      if (ttl) setText(lifetimeNote, ` The download link is valid for ${ttl} after the export completes.`);
      setText(
        estimateNote,
        r.record_count === 0
          ? 'No events match these filters.'
          : r.mode === 'sync'
            ? 'Small export: the file downloads right away.'
            : 'Large export: it runs in the background and the link is e-mailed.',
      );
    } catch (err) {
      if (mine !== estimateSeq || isClosed()) return;
      settled();
      estimateValue.textContent = '—';
      setText(estimateNote, 'No estimate for these filters.');
      if (!showApiFieldError(controls, err)) setText(estimateNote, err.message);
    }
  }
  form.addEventListener('input', (e) => {
    if (filterKeys.has(e.target.name)) scheduleEstimate();
  });
  form.addEventListener('change', (e) => {
    if (e.target.name === 'format') syncProfile();
  });

  function body(restart) {
    const state = readFilters(controls);
    const format = selected('format');
    const b = { format, filters: toApiFilters(state) };
    if (format === 'csv') b.csv = { profile: selected('profile') };
    if (tz.value.trim()) b.timezone = tz.value.trim();
    const to = splitList(email.value);
    if (to.length) b.email_to = to;
    if (restart) b.restart = true;
    return b;
  }

  function busy(on, label = 'Exporting…') {
    submit.disabled = on;
    cancel.disabled = on;
    submit.textContent = on ? label : 'Export';
    form.setAttribute('aria-busy', String(on));
  }

  async function send(restart) {
    clearFieldErrors(form);
    formError.textContent = '';
    formInfo.textContent = '';
    const state = readFilters(controls);
    const problems = checkRange(state);
    if (problems.length) {
      // From after To (or a missing date) never reaches the server.
      for (const p of problems) setFieldError(controls[p.field], p.message);
      controls[problems[0].field].focus();
      formError.textContent = 'Check the date range: ' + problems.map((p) => p.message).join(' ');
      return;
    }
    const request = body(restart);
    busy(true, restart ? 'Restarting…' : 'Exporting…');
    let resp;
    try {
      resp = await api.createExport(request);
    } catch (err) {
      busy(false);
      if (!isClosed()) await handleError(err);
      return;
    }
    if (resp.status === 202) {
      const job = await resp.json();
      if (!isClosed()) renderProgress(env, job, { restarted: job.restarted === true });
      return;
    }
    const disposition = resp.headers.get('Content-Disposition') || '';
    if (/attachment/i.test(disposition)) {
      const name = fileName(disposition) || `audit-logs.${request.format}`;
      const blob = await resp.blob();
      download(blob, name);
      const count = Number(resp.headers.get('X-Record-Count'));
      busy(false);
      dialog.close();
      ctx.toast(`Downloaded ${name}${Number.isFinite(count) && count > 0 ? ` (${plural(count, 'record')})` : ''}.`);
      return;
    }
    const answer = await resp.json().catch(() => ({}));
    busy(false);
    if (answer.warning === 'no_records' || answer.record_count === 0) {
      formInfo.textContent = 'No events match these filters, so there is nothing to export. Adjust the date range or the filters and try again.';
    } else {
      formError.textContent = 'The server answered in a way the console does not understand.';
    }
  }

  async function handleError(err) {
    switch (err.code) {
      case 'duplicate_export': {
        const started = err.error.created_at ? fmtTime(err.error.created_at) : 'earlier';
        const yes = await confirmDialog({
          id: 'duplicate-dialog',
          title: 'Export already in progress',
          message: `An export with the same filters, format and options (started ${started}) is already in progress. Do you want to restart it?`,
          details: 'Restarting discards its progress and runs it again from the beginning; the link is sent when it completes.',
          confirmLabel: 'Restart export',
          cancelLabel: 'Keep it running',
        });
        if (isClosed()) return;
        if (yes) await send(true);
        else formInfo.textContent = 'The export already running continues; follow it on the Jobs page.';
        return;
      }
      case 'too_many_exports': {
        const limit = err.error.limit;
        formError.textContent =
          `You already have ${limit ?? 'the maximum number of'} exports in progress, the most one person may run at once. ` +
          'Wait for one to finish, or cancel one on the Jobs page, then export again.';
        return;
      }
      case 'unverified_recipient':
        setFieldError(email, err.message);
        email.focus();
        return;
      default:
        if (err.field && controls[err.field]) {
          showApiFieldError(controls, err);
          const target = controls[err.field];
          (target.matches('input') ? target : target.querySelector('input'))?.focus();
        } else {
          formError.textContent = err.status === 403 ? `Not allowed: ${err.message}` : err.message;
        }
    }
  }

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    send(false);
  });

  replace(dialog, form);
  runEstimate();
}

function fileName(disposition) {
  const star = disposition.match(/filename\*\s*=\s*UTF-8''([^;]+)/i);
  if (star) {
    try {
      return decodeURIComponent(star[1].trim());
    } catch {
      // fall through to the plain parameter
    }
  }
  const plain = disposition.match(/filename\s*=\s*"([^"]*)"/i) || disposition.match(/filename\s*=\s*([^;]+)/i);
  return plain ? plain[1].trim() : null;
}

/** Saves a blob through a temporary object URL and <a download>. */
function download(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = h('a', { href: url, download: name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  // Revoked later: the browser reads the blob after the click returns.
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** The "Export in progress" panel, following the job until it ends. */
function renderProgress(env, job, { restarted }) {
  const { ctx, dialog, later, isClosed } = env;
  const progress = h('progress', { id: 'exp-progress', max: 1, value: 0, 'aria-label': 'Export progress' });
  const progressText = h('p', { class: 'progress-text', id: 'exp-progress-text' });
  const result = h('div', { id: 'exp-result', role: 'status', 'aria-live': 'polite' });
  const estimated = job.progress?.estimated;
  const heading = h('h2', { id: 'export-title', tabindex: -1 }, 'Export in progress');
  const records = estimated != null ? plural(estimated, 'record') : 'the selected records';
  const intro = h('p', { id: 'exp-intro' }, `Your export of ${records} is being processed.`);
  // Who gets the e-mail and how long the link lives: as the server says
  // (the 202 answer), not as the form was filled in.
  const recipients = Array.isArray(job.recipients) ? job.recipients : [];
  const ttl = fmtDuration(job.link_ttl_seconds);
  const recipient = recipients.length
    ? h('p', { id: 'exp-recipient' }, 'You will receive an email at ', h('strong', { id: 'exp-recipients' }, recipients.join(', ')), ' when the export is ready for download.')
    : h('p', { id: 'exp-recipient' }, 'No e-mail will be sent (no recipient); the link will appear here, on the Jobs page and in your notifications.');
  const lifetime = h(
    'p',
    { id: 'exp-lifetime' },
    ttl ? `The download link will expire ${ttl} after the export completes.` : 'The download link expires some time after the export completes.',
  );

  replace(
    dialog,
    h('div', { class: 'dialog-head' }, heading),
    h(
      'div',
      { class: 'dialog-body', id: 'exp-in-progress' },
      restarted ? h('p', { class: 'notice notice-ok', id: 'exp-restarted' }, 'The export that was already running has been restarted from the beginning.') : null,
      intro,
      recipient,
      lifetime,
      progress,
      progressText,
      result,
    ),
    h(
      'div',
      { class: 'dialog-foot' },
      h(
        'button',
        {
          type: 'button',
          class: 'btn',
          id: 'exp-view-jobs',
          onclick: () => {
            dialog.close();
            ctx.navigate('#/jobs');
          },
        },
        'View all jobs',
      ),
      h('button', { type: 'button', class: 'btn btn-primary', id: 'exp-return', onclick: () => dialog.close() }, 'Return to audit log'),
    ),
  );
  heading.focus();

  function show(j) {
    const done = j.progress?.exported ?? 0;
    const total = j.progress?.estimated ?? j.record_count ?? 0;
    progress.max = Math.max(total, 1);
    progress.value = Math.min(done, progress.max);
    setText(progressText, `${stateLabel(j.state)}: ${fmtNumber(done)} of ${fmtNumber(total)} records`);
    if (jobRunning(j)) return;
    // The panel now reports what happened rather than what will.
    heading.textContent = j.state === 'completed' ? 'Export ready' : 'Export ended';
    if (j.state === 'completed') {
      intro.textContent = `Your export of ${plural(j.record_count ?? done, 'record')} is complete.`;
      if (recipients.length && j.file) replace(recipient, 'The link is also e-mailed to ', h('strong', { id: 'exp-recipients' }, recipients.join(', ')), '.');
      const left = fmtDuration(j.link_ttl_seconds);
      if (j.expires_at) replace(lifetime, left ? `The download link is valid for ${left}, until ` : 'The download link is valid until ', timeEl(j.expires_at), '.');
    } else {
      intro.textContent = 'Your export did not complete.';
    }
    if (j.state === 'completed' && j.download_url) {
      replace(
        result,
        h(
          'p',
          { class: 'notice notice-ok' },
          `${j.file?.name ?? 'The file'} (${fmtBytes(j.file?.size)}) is ready. `,
          h('a', { href: j.download_url, download: j.file?.name ?? '', id: 'exp-download' }, 'Download the file'),
        ),
      );
    } else if (j.state === 'completed') {
      replace(result, h('p', { class: 'notice notice-warn' }, 'The export completed without a file: no events matched.'));
    } else {
      replace(result, h('p', { class: 'notice notice-error' }, `The export ${j.state === 'expired' ? 'expired' : 'failed'}: ${j.error?.message ?? 'no reason given'}.`));
    }
    ctx.bell?.refresh();
  }

  async function poll() {
    if (isClosed()) return;
    try {
      const j = await api.job(job.id);
      if (isClosed()) return;
      show(j);
      if (jobRunning(j)) later(poll, POLL_MS);
    } catch (err) {
      if (!isClosed()) setText(progressText, `Progress unavailable: ${err.message}`);
      later(poll, POLL_MS * 3);
    }
  }
  show(job);
  if (jobRunning(job)) later(poll, POLL_MS);
}
