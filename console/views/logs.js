// The audit log: filters and a keyset-paginated table. The API pages
// forward only (next_cursor), so "Previous" replays the cursor of the
// page before from a stack kept here.

import { api } from '../api.js';
import { h, replace, setText, clearFieldErrors, setFieldError, fmtNumber } from '../dom.js';
import { emptyFilters, filterControls, readFilters, checkRange, toQuery, showApiFieldError } from '../filters.js';
import { timeEl, displayZone, onZoneChange, utcDay } from '../time.js';
import { openExportDialog } from './export.js';

const PAGE_SIZES = [25, 50, 100, 200];

// Kept across page switches so going to Jobs and back keeps the filters.
let saved = null;

function defaults() {
  return { filters: emptyFilters(utcDay(-29), utcDay(0)), limit: 50 };
}

export function mount(main, ctx) {
  saved ??= defaults();
  const st = saved;
  let cursors = [null]; // cursor of each page shown so far; the last is the current page
  let events = [];
  let nextCursor = null;
  let seq = 0; // ignores answers to superseded requests
  const expanded = new Set();

  const { range, optional, controls } = filterControls('log', st.filters);
  const formError = h('p', { class: 'notice notice-error', role: 'alert' });
  const form = h(
    'form',
    { class: 'panel', novalidate: true, 'aria-labelledby': 'filters-title' },
    h('h2', { id: 'filters-title' }, 'Filters'),
    h('div', { class: 'form-grid' }, range, optional),
    h('p', { class: 'hint form-hint' }, 'Dates are whole days in UTC. Separate several actors, actions or streams with commas.'),
    formError,
    h(
      'div',
      { class: 'form-actions' },
      h(
        'div',
        { class: 'btn-row' },
        h('button', { type: 'submit', class: 'btn btn-primary', id: 'filters-apply' }, 'Apply filters'),
        h('button', { type: 'button', class: 'btn', id: 'filters-reset', onclick: reset }, 'Reset'),
      ),
    ),
  );
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    apply();
  });

  const status = h('p', { id: 'log-status', role: 'status', 'aria-live': 'polite' });
  const prev = h('button', { type: 'button', class: 'btn', id: 'page-prev', onclick: goPrev }, '‹ Previous');
  const next = h('button', { type: 'button', class: 'btn', id: 'page-next', onclick: goNext }, 'Next ›');
  const size = h(
    'select',
    { id: 'page-size' },
    PAGE_SIZES.map((n) => h('option', { value: n, selected: n === st.limit }, String(n))),
  );
  size.addEventListener('change', () => {
    st.limit = Number(size.value);
    cursors = [null];
    load();
  });
  const timeHead = h('th', { scope: 'col' });
  const caption = h('caption', { class: 'visually-hidden' });
  const tbody = h('tbody');
  const table = h(
    'table',
    { class: 'data stack', id: 'log-table' },
    caption,
    h(
      'thead',
      h(
        'tr',
        h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Details')),
        timeHead,
        h('th', { scope: 'col' }, 'Action'),
        h('th', { scope: 'col' }, 'Actor'),
        h('th', { scope: 'col' }, 'Target'),
        h('th', { scope: 'col' }, 'Stream'),
        h('th', { scope: 'col' }, 'Source'),
      ),
    ),
    tbody,
  );

  const exportButton = ctx.me.can_export
    ? h(
        'button',
        {
          type: 'button',
          class: 'btn btn-primary',
          id: 'export-open',
          'aria-haspopup': 'dialog',
          onclick: () => openExportDialog(ctx, readFilters(controls)),
        },
        'Export…',
      )
    : null;

  replace(
    main,
    h('h1', null, 'Audit log'),
    form,
    h(
      'section',
      { class: 'panel', 'aria-labelledby': 'events-title' },
      h('div', { class: 'panel-head' }, h('h2', { id: 'events-title' }, 'Events'), exportButton),
      h(
        'div',
        { class: 'results-bar' },
        status,
        h(
          'div',
          { class: 'pager' },
          h('label', { for: 'page-size' }, 'Per page'),
          size,
          prev,
          next,
        ),
      ),
      h('div', { class: 'table-wrap' }, table),
    ),
  );

  function apply() {
    clearFieldErrors(form);
    formError.textContent = '';
    const filters = readFilters(controls);
    const problems = checkRange(filters);
    if (problems.length) {
      for (const p of problems) setFieldError(controls[p.field], p.message);
      controls[problems[0].field].focus();
      setText(status, 'Fix the highlighted filters to see events.');
      return;
    }
    st.filters = filters;
    cursors = [null];
    load();
  }

  function reset() {
    st.filters = defaults().filters;
    for (const [key, el] of Object.entries(controls)) {
      const v = st.filters[key];
      el.value = Array.isArray(v) ? v.join(', ') : v ?? '';
    }
    clearFieldErrors(form);
    formError.textContent = '';
    cursors = [null];
    load();
  }

  function goNext() {
    if (!nextCursor) return;
    cursors.push(nextCursor);
    load();
  }

  function goPrev() {
    if (cursors.length < 2) return;
    cursors.pop();
    load();
  }

  async function load() {
    const mine = ++seq;
    const cursor = cursors[cursors.length - 1];
    prev.disabled = true;
    next.disabled = true;
    table.setAttribute('aria-busy', 'true');
    setText(status, 'Loading events…');
    try {
      const page = await api.auditLogs({ ...toQuery(st.filters), limit: st.limit, cursor });
      if (mine !== seq) return;
      events = page.data;
      nextCursor = page.next_cursor;
      expanded.clear();
      render();
    } catch (err) {
      if (mine !== seq) return;
      events = [];
      nextCursor = null;
      render();
      if (!showApiFieldError(controls, err)) formError.textContent = err.message;
      setText(status, 'The events could not be loaded.');
    } finally {
      if (mine === seq) table.removeAttribute('aria-busy');
    }
  }

  function render() {
    const pageNo = cursors.length;
    const first = (pageNo - 1) * st.limit + 1;
    prev.disabled = pageNo < 2;
    next.disabled = !nextCursor;
    const zone = displayZone();
    timeHead.textContent = `Time (${zone})`;
    caption.textContent = `Audit events, page ${pageNo}, times in ${zone}`;
    if (events.length === 0) {
      setText(status, pageNo > 1 ? 'No more events.' : `No events match these filters from ${st.filters.from} to ${st.filters.to}.`);
    } else {
      setText(
        status,
        `Events ${fmtNumber(first)}–${fmtNumber(first + events.length - 1)} · page ${pageNo}${nextCursor ? ' · more on the next page' : ' · last page'}`,
      );
    }
    replace(tbody, events.length ? events.flatMap(rows) : h('tr', null, h('td', { colspan: 7, class: 'empty' }, 'No events to show.')));
  }

  function rows(e) {
    const detailId = `event-${e.id}-json`;
    const open = expanded.has(e.id);
    const label = (o) => `${o ? 'Hide' : 'Show'} the full JSON of event ${e.id}`;
    const button = h(
      'button',
      {
        type: 'button',
        class: 'expand',
        'aria-expanded': String(open),
        'aria-controls': detailId,
        'aria-label': label(open),
        dataset: { focusKey: `expand-${e.id}` },
      },
      open ? '−' : '+',
    );
    const detail = h(
      'tr',
      { class: 'detail-row', id: detailId, hidden: !open },
      h(
        'td',
        { colspan: 7 },
        h('pre', { class: 'json', tabindex: 0, 'aria-label': `Event ${e.id} as JSON` }, JSON.stringify(e, null, 2)),
      ),
    );
    button.addEventListener('click', () => {
      const nowOpen = !expanded.has(e.id);
      if (nowOpen) expanded.add(e.id);
      else expanded.delete(e.id);
      button.setAttribute('aria-expanded', String(nowOpen));
      button.setAttribute('aria-label', label(nowOpen));
      button.textContent = nowOpen ? '−' : '+';
      detail.hidden = !nowOpen;
    });
    const actor = e.actor;
    const target = e.target;
    return [
      h(
        'tr',
        { class: 'event-row', dataset: { eventId: e.id } },
        h('td', null, button),
        h('td', { class: 'nowrap', 'data-label': `Time (${displayZone()})` }, timeEl(e.occurred_at)),
        h('td', { 'data-label': 'Action' }, h('code', null, e.action)),
        h(
          'td',
          { 'data-label': 'Actor' },
          actor ? [actor.name || actor.id || '—', h('span', { class: 'sub' }, [actor.email || actor.id, actor.type].filter(Boolean).join(' · '))] : h('span', { class: 'muted' }, '—'),
        ),
        h(
          'td',
          { 'data-label': 'Target' },
          target ? [target.name || target.id || '—', h('span', { class: 'sub' }, [target.type, target.id].filter(Boolean).join(' · '))] : h('span', { class: 'muted' }, '—'),
        ),
        h('td', { 'data-label': 'Stream' }, e.stream),
        h('td', { 'data-label': 'Source' }, e.context?.ip_address || h('span', { class: 'muted' }, '—')),
      ),
      detail,
    ];
  }

  const unsubscribe = onZoneChange(render);
  load();
  return () => {
    unsubscribe();
    seq += 1;
  };
}
