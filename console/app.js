// Console entry point: session, top bar, hash router. Views are modules
// with mount(main, ctx) returning a cleanup function, so polling stops
// when the user leaves a page.

import { api, session, setUnauthorizedHandler } from './api.js';
import { replace } from './dom.js';
import { useUtc, setUseUtc } from './time.js';
import { renderSignIn } from './views/signin.js';
import { createBell } from './views/notifications.js';
import * as logs from './views/logs.js';
import * as jobs from './views/jobs.js';
import * as schedules from './views/schedules.js';

const ROUTES = {
  logs: { view: logs, title: 'Audit log', needsExport: false },
  jobs: { view: jobs, title: 'Jobs', needsExport: true },
  schedules: { view: schedules, title: 'Schedules', needsExport: true },
};

const $ = (id) => document.getElementById(id);
const state = { me: null, unmount: null, bell: null, route: null };

let toastTimer = 0;
/** A short message in the polite live region at the bottom of the page. */
function toast(message, ms = 8000) {
  const el = $('toast');
  el.textContent = message;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    el.textContent = '';
  }, ms);
}

function routeName() {
  const m = location.hash.match(/^#\/([a-z]+)/);
  return m ? m[1] : 'logs';
}

function route() {
  if (!state.me) return;
  const name = routeName();
  const entry = ROUTES[name];
  if (!entry || (entry.needsExport && !state.me.can_export)) {
    // Unknown pages and pages of other roles fall back to the log (the
    // hash change routes again).
    location.replace('#/logs');
    return;
  }
  const { view, title } = ROUTES[name];
  const changed = state.route !== null && state.route !== name;
  state.unmount?.();
  state.route = name;
  for (const a of document.querySelectorAll('#mainnav a')) {
    if (a.dataset.route === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  document.title = `${title} · audit-export`;
  const main = $('main');
  replace(main);
  state.unmount = view.mount(main, context()) ?? null;
  // After a navigation, start screen readers and keyboards at the content.
  if (changed) main.focus();
}

function context() {
  return {
    me: state.me,
    toast,
    bell: state.bell,
    navigate: (hash) => {
      location.hash = hash;
    },
  };
}

function enter(me) {
  state.me = me;
  $('top-org').textContent = me.organization_id;
  $('top-user').textContent = me.name || me.email;
  $('top-user').title = me.email;
  $('top-role').textContent = me.role;
  for (const a of document.querySelectorAll('#mainnav [data-needs-export]')) a.hidden = !me.can_export;
  $('topbar').hidden = false;
  $('mainnav').hidden = false;
  state.bell = createBell({ toast });
  state.bell.start();
  route();
}

function signOut(message) {
  state.unmount?.();
  state.unmount = null;
  state.bell?.stop();
  state.bell = null;
  state.me = null;
  state.route = null;
  session.clear();
  $('topbar').hidden = true;
  $('mainnav').hidden = true;
  document.title = 'Sign in · audit-export';
  for (const d of document.querySelectorAll('dialog[open]')) d.close();
  renderSignIn($('main'), { message, onSignedIn: enter });
}

async function start() {
  $('sign-out').addEventListener('click', () => signOut('You are signed out.'));
  const utc = $('utc-toggle');
  utc.checked = useUtc();
  utc.addEventListener('change', () => setUseUtc(utc.checked));
  // The skip link would otherwise put "#main" in the router's hash.
  $('skip-link').addEventListener('click', (e) => {
    e.preventDefault();
    $('main').focus();
  });
  window.addEventListener('hashchange', route);
  setUnauthorizedHandler(() => {
    if (state.me) signOut('Your token is no longer accepted (revoked or expired). Sign in again.');
  });

  const token = session.token();
  if (!token) {
    signOut();
    return;
  }
  try {
    enter(await api.me(token));
  } catch (e) {
    signOut(e.status === 401 ? 'Your token is no longer accepted. Sign in again.' : e.message);
  }
}

start();
