// The bell: unread count, the list, mark read / all read. Polls slowly on
// its own; pages that see a job end call refresh() so the count follows
// at once instead of at the next tick.

import { api } from '../api.js';
import { h, replace, setText, fmtNumber, plural } from '../dom.js';
import { timeEl, onZoneChange } from '../time.js';
import { describeJobFilters } from '../filters.js';

const POLL_MS = 15000;
const PAGE = 20;

const TITLES = {
  export_completed: 'Export ready',
  export_failed: 'Export failed',
  export_expired: 'Export expired',
  export_no_results: 'Export found no events',
};

export function createBell({ toast }) {
  const $ = (id) => document.getElementById(id);
  const bell = $('bell');
  const count = $('bell-count');
  const panel = $('notif-panel');
  const list = $('notif-list');
  const status = $('notif-status');
  const readAll = $('notif-read-all');
  const listeners = new AbortController();
  const on = (el, type, fn) => el.addEventListener(type, fn, { signal: listeners.signal });

  let items = [];
  let unread = 0;
  let known = null; // unread count last seen, to announce new ones
  let timer = 0;
  let running = false;
  let seq = 0;

  function open(show) {
    panel.hidden = !show;
    bell.setAttribute('aria-expanded', String(show));
    if (show) {
      render();
      refresh();
    }
  }

  on(bell, 'click', () => open(panel.hidden));
  on(document, 'keydown', (e) => {
    if (e.key === 'Escape' && !panel.hidden) {
      open(false);
      bell.focus();
    }
  });
  on(document, 'click', (e) => {
    if (!panel.hidden && !panel.contains(e.target) && !bell.contains(e.target)) open(false);
  });
  on(readAll, 'click', async () => {
    try {
      await api.markAllRead();
      await refresh();
      setText(status, 'All notifications marked as read.');
    } catch (err) {
      setText(status, err.message);
    }
  });
  const unsubscribe = onZoneChange(() => render());

  function showCount() {
    count.textContent = unread > 99 ? '99+' : String(unread);
    count.hidden = unread === 0;
    bell.setAttribute('aria-label', unread ? `Notifications, ${plural(unread, 'unread')}` : 'Notifications, none unread');
    bell.dataset.unread = String(unread);
    readAll.disabled = unread === 0;
  }

  function render() {
    showCount();
    if (panel.hidden) return;
    replace(list, items.length ? items.map(item) : h('li', { class: 'empty' }, 'No notifications yet.'));
  }

  function item(n) {
    const p = n.payload ?? {};
    const link = p.download_url && (!p.expires_at || Date.parse(p.expires_at) > Date.now());
    const mark = n.read
      ? null
      : h(
          'button',
          {
            type: 'button',
            class: 'btn btn-small',
            // Starts with the visible text, as speech-input users say it.
            'aria-label': `Mark read: ${TITLES[n.kind] ?? n.kind}, ${new Date(n.created_at).toISOString()}`,
            onclick: async () => {
              try {
                await api.markRead(n.id);
                await refresh();
                setText(status, 'Marked as read.');
              } catch (err) {
                setText(status, err.message);
              }
            },
          },
          'Mark read',
        );
    return h(
      'li',
      { class: ['notif-item', n.read ? null : 'unread'], dataset: { id: n.id, kind: n.kind } },
      h('span', { class: 'notif-title' }, TITLES[n.kind] ?? n.kind, n.read ? null : h('span', { class: 'visually-hidden' }, ' (unread)')),
      p.filters ? h('span', null, describeJobFilters(p.filters)) : p.summary ? h('span', null, p.summary) : null,
      h(
        'span',
        { class: 'notif-meta' },
        timeEl(n.created_at),
        p.format ? ` · ${String(p.format).toUpperCase()}` : null,
        p.record_count != null ? ` · ${fmtNumber(p.record_count)} records` : null,
      ),
      p.error?.message ? h('span', { class: 'notif-meta' }, p.error.message) : null,
      h(
        'span',
        { class: 'notif-actions' },
        link ? h('a', { href: p.download_url, download: p.file?.name ?? '' }, 'Download') : null,
        mark,
      ),
    );
  }

  async function refresh() {
    const mine = ++seq;
    try {
      const answer = await api.notifications({ limit: PAGE });
      if (mine !== seq) return;
      items = answer.data;
      unread = answer.unread;
      if (known !== null && unread > known) {
        const newest = items.find((n) => !n.read);
        toast(`New notification: ${newest ? TITLES[newest.kind] ?? newest.kind : plural(unread - known, 'notice')}.`);
      }
      known = unread;
      render();
    } catch (err) {
      if (mine === seq && !panel.hidden) setText(status, `Notifications unavailable: ${err.message}`);
    }
  }

  function tick() {
    if (!running) return;
    refresh().finally(() => {
      if (running) timer = setTimeout(tick, POLL_MS);
    });
  }

  return {
    start() {
      running = true;
      tick();
    },
    stop() {
      running = false;
      clearTimeout(timer);
      listeners.abort();
      unsubscribe();
      open(false);
      count.hidden = true;
    },
    refresh,
  };
}
