#!/usr/bin/env node
// End-to-end checks of the web console in real Chromium, against a running
// server (see dev-server.sh / run.sh). Everything comes from the
// environment:
//
//   BASE_URL          http://127.0.0.1:PORT of `audit-export serve`
//   ADMIN_TOKEN, COMPLIANCE_TOKEN, VIEWER_TOKEN
//                     users of organization acme, fixtures ingested, server
//                     started with AUDIT_EXPORT_HTTP_SYNC_THRESHOLD=500
//   SERVER_BIN, DATA_DIR
//                     to ingest test events while the server runs
//   ARTIFACTS_DIR     screenshots (default: ./artifacts beside this file)
//   CHROMIUM          browser binary (default /usr/bin/chromium)
//
// Prints one line per check and a closing "N passed, M failed"; exits 0
// only when every check passed.
//
// Also checked: the security headers of every response the browser saw and
// of a list of console and API requests (errors included); an axe-core
// scan of each page at 1280×800 and at 390×844; that each page's
// screenshot was written by this run.

import { chromium } from 'playwright-core';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const CONSOLE_DIR = path.join(HERE, '..', '..', 'console');

function need(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`e2e: environment variable ${name} is required`);
    process.exit(2);
  }
  return v;
}

const BASE_URL = need('BASE_URL').replace(/\/+$/, '');
const TOKENS = { admin: need('ADMIN_TOKEN'), compliance: need('COMPLIANCE_TOKEN'), viewer: need('VIEWER_TOKEN') };
const SERVER_BIN = need('SERVER_BIN');
const DATA_DIR = need('DATA_DIR');
const ARTIFACTS = process.env.ARTIFACTS_DIR || path.join(HERE, 'artifacts');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const AXE_PATH = path.join(HERE, 'node_modules', 'axe-core', 'axe.min.js');
// Evaluated through the DevTools protocol, which the page's CSP does not
// govern: axe runs in the strict contexts too, without weakening them.
const AXE_SOURCE = fs.readFileSync(AXE_PATH, 'utf8');
fs.mkdirSync(ARTIFACTS, { recursive: true });
const RUN_STARTED = Date.now();

// The whole run must stay short; a hung browser must not hang CI.
const WATCHDOG = setTimeout(() => {
  console.log('not ok - the run exceeded 300 s and was stopped');
  console.log(`${passed} passed, ${failed + 1} failed`);
  process.exit(1);
}, 300_000);

// Fixture windows (fixtures/audit_events.jsonl: acme, 2025-07-01..2026-01-31).
const FIXTURE = { from: '2025-07-01', to: '2026-01-31' };
const SMALL = { from: '2025-07-01', to: '2025-07-31' };
// Windows of the events this run adds, away from the fixtures.
const BULK = { from: '2024-03-01', to: '2024-03-31', rows: 150_000 };
const XSS_DAY = '2024-02-10';

// ---------------------------------------------------------------- runner

let passed = 0;
let failed = 0;
async function check(name, fn) {
  const started = Date.now();
  try {
    await fn();
    passed += 1;
    console.log(`ok - ${name} (${Date.now() - started} ms)`);
  } catch (e) {
    failed += 1;
    const msg = String(e?.message ?? e).split('\n').slice(0, 6).join(' | ');
    console.log(`not ok - ${name}: ${msg}`);
    await recover();
  }
}

// After a failed check, close what it left open (dialogs, the
// notification list) so that the next checks start from a usable page
// instead of failing in cascade.
const pages = [];
async function recover() {
  for (const p of pages) {
    if (p.isClosed()) continue;
    await p
      .evaluate(() => {
        for (const d of document.querySelectorAll('dialog[open]')) d.close();
        const panel = document.querySelector('#notif-panel');
        if (panel && !panel.hidden) document.querySelector('#bell')?.click();
      })
      .catch(() => {});
    await p.unrouteAll({ behavior: 'ignoreErrors' }).catch(() => {});
  }
}

function assert(cond, message) {
  if (!cond) throw new Error(message);
}

// ------------------------------------------------------------ API set-up

async function apiGet(token, p) {
  const r = await fetch(BASE_URL + p, { headers: { Authorization: `Bearer ${token}` } });
  if (!r.ok) throw new Error(`GET ${p}: HTTP ${r.status}`);
  return r.json();
}

async function estimate(token, filters) {
  const r = await fetch(`${BASE_URL}/api/v1/exports/estimate`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ filters }),
  });
  if (!r.ok) throw new Error(`estimate: HTTP ${r.status}`);
  return (await r.json()).record_count;
}

function ingestSync(file) {
  const r = spawnSync(SERVER_BIN, ['--data-dir', DATA_DIR, 'ingest', file], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ingest ${file}: ${r.stderr || r.stdout}`);
}

/**
 * Adds BULK.rows acme events in the BULK window (once per data dir), in
 * the background: a job over them runs for seconds, long enough for the
 * duplicate / restart / cancel flows; the fixtures' jobs end in ~20 ms.
 */
function startBulkIngest() {
  return (async () => {
    const have = await estimate(TOKENS.admin, { from: BULK.from, to: BULK.to });
    if (have >= BULK.rows) return 'already there';
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'console-e2e-')), 'bulk.jsonl');
    const out = fs.createWriteStream(file);
    const start = Date.parse(`${BULK.from}T00:00:00Z`);
    const span = 28 * 86_400_000;
    for (let i = 0; i < BULK.rows; i += 1) {
      const line = JSON.stringify({
        organization_id: 'acme',
        occurred_at: new Date(start + Math.floor((i * span) / BULK.rows)).toISOString(),
        stream: 'audit',
        action: 'record.synced',
        actor: { type: 'service', id: 'svc_sync', name: 'Sync Service', email: null },
        target: { type: 'record', id: `r_${i}`, name: `Record ${i}` },
        context: { ip_address: '192.0.2.10', user_agent: 'e2e bulk', request_id: `req_bulk_${i}` },
        changed_data: { status: { from: 'old', to: 'new' } },
        details: { batch: Math.floor(i / 1000) },
      });
      if (!out.write(`${line}\n`)) await new Promise((r) => out.once('drain', r));
    }
    await new Promise((r) => out.end(r));
    await new Promise((resolve, reject) => {
      const child = spawn(SERVER_BIN, ['--data-dir', DATA_DIR, 'ingest', file], { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      child.stderr.on('data', (d) => {
        err += d;
      });
      child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`bulk ingest failed: ${err.slice(0, 300)}`))));
    });
    fs.rmSync(path.dirname(file), { recursive: true, force: true });
    return 'ingested';
  })();
}

// The XSS payloads: each would set window.__xssFired or open a dialog.
const XSS = '<img src=x onerror="window.__xssFired=1;alert(1)">';
// Under a sensitive key: the viewer shows it redacted, as exports do.
const XSS_SECRET = 'hunter2-e2e-secret';
function ingestXssEvent() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'console-e2e-'));
  const file = path.join(dir, 'xss.jsonl');
  const event = {
    organization_id: 'acme',
    occurred_at: `${XSS_DAY}T12:00:00.000Z`,
    stream: 'audit',
    action: 'user.updated',
    actor: { type: 'user', id: 'u_xss', name: XSS, email: 'xss@acme.example' },
    target: { type: 'user', id: 'u_target', name: '<script>window.__xssFired=1</script>' },
    context: { ip_address: '192.0.2.66', user_agent: '<svg onload="window.__xssFired=1">', request_id: 'req_xss' },
    changed_data: { name: { from: 'x', to: XSS } },
    details: { note: '<iframe src="javascript:window.__xssFired=1"></iframe>', password: XSS_SECRET },
  };
  fs.writeFileSync(file, `${JSON.stringify(event)}\n`);
  ingestSync(file);
  fs.rmSync(dir, { recursive: true, force: true });
}

// ---------------------------------------------------------------- browser

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  // A fresh temporary profile per launch is playwright's default.
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});

const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
const problems = []; // CSP violations and script errors of the strict contexts
const responses = []; // every response of the server the browser saw: { url, status, headers }

async function newPage({ viewport = DESKTOP, bypassCSP = false, label }) {
  const context = await browser.newContext({
    viewport,
    acceptDownloads: true,
    bypassCSP,
    locale: 'en-US',
    timezoneId: 'Europe/Paris',
    deviceScaleFactor: 1,
  });
  const page = await context.newPage();
  pages.push(page);
  page.setDefaultTimeout(15_000);
  page.requests = [];
  page.on('request', (r) => page.requests.push({ method: r.method(), url: r.url(), at: Date.now(), body: r.postData() }));
  page.on('response', (r) => {
    if (!r.url().startsWith(BASE_URL)) return;
    // Read at once: a closed context no longer answers.
    responses.push({ url: r.url(), status: r.status(), headers: r.allHeaders().catch(() => null) });
  });
  if (!bypassCSP) {
    page.on('console', (m) => {
      if (m.type() === 'error' && /Content.Security.Policy|Refused to/i.test(m.text())) problems.push(`${label}: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`${label}: ${e.message}`));
  }
  return page;
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`) });
}

async function signIn(page, token) {
  await page.goto(`${BASE_URL}/`);
  await page.locator('#signin-token').fill(token);
  await page.locator('form button[type=submit]').click();
  await page.locator('#topbar').waitFor({ state: 'visible' });
  await page.locator('#log-table').waitFor();
}

/** Applies the viewer's filters; the ones not given are emptied. */
async function showLog(page, { from, to, action = '', actor = '', targetType = '', targetId = '', stream = '', q = '' }) {
  await page.locator('#log-from').fill(from);
  await page.locator('#log-to').fill(to);
  await page.locator('#log-actions').fill(action);
  await page.locator('#log-actors').fill(actor);
  await page.locator('#log-target-type').fill(targetType);
  await page.locator('#log-target-id').fill(targetId);
  await page.locator('#log-streams').fill(stream);
  await page.locator('#log-q').fill(q);
  await page.locator('#filters-apply').click();
  await page.waitForFunction(() => !document.querySelector('#log-table').hasAttribute('aria-busy'));
}

// The Jobs page's status once the list is in ("3 jobs; …", "1 export running; …"),
// not while it loads ("Loading jobs…").
const JOBS_LOADED = /^\d[\d,]* (jobs?|exports?)\b/;

async function openExport(page) {
  await page.locator('#export-open').click();
  await page.locator('#export-dialog[open]').waitFor();
}

async function fillExportRange(page, { from, to }) {
  await page.locator('#exp-from').fill(from);
  await page.locator('#exp-to').fill(to);
}

/** Waits for the dialog's estimate of the current filters. */
async function waitEstimate(page) {
  await page.waitForFunction(() => {
    const el = document.querySelector('#exp-estimate-count');
    return el && el.dataset.count !== undefined && !/Estimating/.test(document.querySelector('#exp-estimate-note').textContent);
  });
  return Number(await page.locator('#exp-estimate-count').getAttribute('data-count'));
}

async function unread(page) {
  return Number((await page.locator('#bell').getAttribute('data-unread')) ?? 0);
}

/** Minimal RFC 4180 reader: quoted fields may hold commas, quotes, newlines. */
function parseCsv(text) {
  const rows = [];
  let row = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i += 1) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        cell += '"';
        i += 1;
      } else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(cell);
      cell = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i += 1;
      row.push(cell);
      rows.push(row);
      row = [];
      cell = '';
    } else cell += c;
  }
  if (cell !== '' || row.length) {
    row.push(cell);
    rows.push(row);
  }
  return rows;
}

async function noOverflow(page, what) {
  const m = await page.evaluate(() => ({
    doc: document.documentElement.scrollWidth,
    body: document.body.scrollWidth,
    inner: window.innerWidth,
  }));
  assert(m.doc <= m.inner && m.body <= m.inner, `${what}: page is ${Math.max(m.doc, m.body)} px wide in a ${m.inner} px viewport`);
}

async function axe(page, what) {
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.evaluate(AXE_SOURCE);
  const result = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(' ')).slice(0, 3) }));
  });
  const bad = result.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  assert(bad.length === 0, `${what}: ${bad.map((v) => `${v.id} (${v.impact}) at ${v.nodes.join(', ')}`).join('; ')}`);
}

/** Both tables of rows fit their box at this width: no sideways scrolling. */
async function tablesFit(page, what) {
  const wide = await page.evaluate(() =>
    [...document.querySelectorAll('.table-wrap')]
      .filter((w) => w.offsetParent !== null && w.scrollWidth > w.clientWidth + 1)
      .map((w) => `${w.querySelector('table')?.id}: ${w.scrollWidth} px in ${w.clientWidth} px`),
  );
  assert(wide.length === 0, `${what}: a table scrolls sideways (${wide.join(', ')})`);
}

/** A control is inside the viewport (not cut off, no scrolling needed). */
async function inView(page, selector, what) {
  const box = await page.locator(selector).boundingBox();
  const vp = page.viewportSize();
  assert(box && box.x >= 0 && box.y >= 0 && box.x + box.width <= vp.width && box.y + box.height <= vp.height,
    `${what}: ${selector} is outside the ${vp.width}×${vp.height} viewport (${JSON.stringify(box)})`);
}

/**
 * The headers issue 19 asks of every console and API response: a CSP
 * without inline script and with frame-ancestors 'none', nosniff,
 * no-referrer. Returns what is wrong ('' when all is well).
 */
function securityProblems(headers) {
  const get = (name) => {
    const key = Object.keys(headers).find((k) => k.toLowerCase() === name);
    return key === undefined ? undefined : String(headers[key]);
  };
  const bad = [];
  const csp = get('content-security-policy');
  if (!csp) bad.push('no Content-Security-Policy');
  else {
    const dirs = new Map(
      csp
        .split(';')
        .map((d) => d.trim().split(/\s+/))
        .filter((d) => d[0])
        .map(([k, ...v]) => [k.toLowerCase(), v]),
    );
    const script = dirs.get('script-src') ?? dirs.get('default-src');
    if (!script) bad.push('CSP without script-src or default-src');
    else if (script.some((v) => /^'unsafe-inline'$|^'unsafe-eval'$|^\*$|^data:$|^https?:$/i.test(v))) bad.push(`CSP script-src allows ${script.join(' ')}`);
    if ((dirs.get('frame-ancestors') ?? []).join(' ') !== "'none'") bad.push(`CSP frame-ancestors is ${dirs.get('frame-ancestors')?.join(' ') ?? 'missing'}`);
  }
  if (get('x-content-type-options')?.toLowerCase() !== 'nosniff') bad.push(`X-Content-Type-Options: ${get('x-content-type-options')}`);
  if (get('referrer-policy')?.toLowerCase() !== 'no-referrer') bad.push(`Referrer-Policy: ${get('referrer-policy')}`);
  return bad.join(', ');
}

/** fetch() with a token, keeping the status and the headers. */
async function call(method, p, { token, body, headers = {} } = {}) {
  const h = { ...headers };
  if (token) h.Authorization = `Bearer ${token}`;
  if (body !== undefined) h['Content-Type'] = 'application/json';
  const r = await fetch(BASE_URL + p, { method, headers: h, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body), redirect: 'manual' });
  const text = await r.text();
  return { status: r.status, headers: Object.fromEntries(r.headers.entries()), text };
}

function utcDay(ms) {
  return new Date(ms).toISOString().slice(0, 10);
}

// ------------------------------------------------------------------ checks

const me = {
  admin: await apiGet(TOKENS.admin, '/api/v1/me'),
  compliance: await apiGet(TOKENS.compliance, '/api/v1/me'),
  viewer: await apiGet(TOKENS.viewer, '/api/v1/me'),
};
const bulk = startBulkIngest();
bulk.catch(() => {}); // awaited (and reported) by the check that needs it

const page = await newPage({ label: 'admin' });

await check('sign-in: a bad token is refused beside the field; the admin then sees name, role, organization; the token is only in sessionStorage', async () => {
  await page.goto(`${BASE_URL}/`);
  await page.locator('#signin-token').waitFor();
  await shot(page, 'desktop-sign-in');
  await page.locator('#signin-token').fill('ae_not_a_real_token');
  await page.locator('form button[type=submit]').click();
  await page.locator('#signin-token-error', { hasText: 'not valid' }).waitFor();
  assert((await page.locator('#signin-token').getAttribute('aria-invalid')) === 'true', 'the field is not marked invalid');
  await page.locator('#signin-token').fill(TOKENS.admin);
  await page.locator('form button[type=submit]').click();
  await page.locator('#topbar').waitFor({ state: 'visible' });
  assert((await page.locator('#top-user').textContent()) === me.admin.name, 'user name missing from the top bar');
  assert((await page.locator('#top-role').textContent()) === me.admin.role, 'role missing from the top bar');
  assert((await page.locator('#top-org').textContent()) === me.admin.organization_id, 'organization missing from the top bar');
  const stored = await page.evaluate(() => ({ session: Object.values(sessionStorage), local: Object.values(localStorage) }));
  assert(stored.session.includes(TOKENS.admin), 'token not in sessionStorage');
  assert(!stored.local.some((v) => v.includes(TOKENS.admin)), 'token leaked into localStorage');
  assert(!page.url().includes(TOKENS.admin), 'token in the URL');
  assert(!page.requests.some((r) => r.url.includes(TOKENS.admin)), 'token sent in a URL');
});

await check('audit log: filters, keyset pagination next/previous, row expands to its JSON, UTC toggle', async () => {
  await showLog(page, FIXTURE);
  await page.locator('#page-size').selectOption('25');
  await page.locator('#log-status', { hasText: 'page 1' }).waitFor();
  const ids = () => page.locator('tr.event-row').evaluateAll((rows) => rows.map((r) => r.dataset.eventId));
  const first = await ids();
  assert(first.length === 25, `page 1 has ${first.length} rows, expected 25`);
  await page.locator('#page-next').click();
  await page.locator('#log-status', { hasText: 'page 2' }).waitFor();
  const second = await ids();
  assert(second.length === 25 && !second.some((id) => first.includes(id)), 'page 2 repeats page 1');
  await page.locator('#page-prev').click();
  await page.locator('#log-status', { hasText: 'page 1' }).waitFor();
  assert(JSON.stringify(await ids()) === JSON.stringify(first), 'Previous did not return to page 1');
  assert(await page.locator('#page-prev').isDisabled(), 'Previous enabled on page 1');

  const row = page.locator('tr.event-row').first();
  const id = await row.getAttribute('data-event-id');
  await row.locator('button.expand').click();
  assert((await row.locator('button.expand').getAttribute('aria-expanded')) === 'true', 'aria-expanded not set');
  const json = JSON.parse(await page.locator(`#event-${id}-json pre`).textContent());
  assert(String(json.id) === id && json.organization_id === 'acme' && 'details' in json, 'expanded JSON is not the event');

  assert((await page.locator('#log-table thead').textContent()).includes('Europe/Paris'), 'times are not in the browser zone');
  const local = await row.locator('time').textContent();
  await page.locator('#utc-toggle').check();
  assert((await page.locator('#log-table thead').textContent()).includes('Time (UTC)'), 'UTC toggle did not relabel');
  const utc = await row.locator('time').textContent();
  assert(utc !== local && utc.includes('UTC'), `UTC toggle did not change the time (${local} → ${utc})`);
  assert(utc.replace(' UTC', '').replace(' ', 'T') === json.occurred_at.slice(0, 19), `UTC time ${utc} is not ${json.occurred_at}`);
  await page.locator('#utc-toggle').uncheck();
  await shot(page, 'desktop-audit-log');

  await showLog(page, { ...FIXTURE, action: 'user.*' });
  const actions = await page.locator('tr.event-row td:nth-child(3)').allTextContents();
  assert(actions.length > 0 && actions.every((a) => a.startsWith('user.')), 'action prefix filter user.* not applied');
  await showLog(page, FIXTURE);
});

await check('audit log: actor, target type and ID, stream and text filters go to the API and give its rows', async () => {
  const sample = (await apiGet(TOKENS.admin, `/api/v1/audit-logs?from=${FIXTURE.from}&to=${FIXTURE.to}&limit=300`)).data.find(
    (e) => e.actor?.id && e.target?.type && e.target?.id && e.target?.name,
  );
  assert(sample, 'no fixture event with an actor and a named target');
  const word = sample.target.name.split(/\s+/)[0];
  const f = { actor: sample.actor.id, targetType: sample.target.type, targetId: sample.target.id, stream: sample.stream, q: word };
  try {
    const mark = page.requests.length;
    await showLog(page, { ...FIXTURE, ...f });
    const sent = page.requests.slice(mark).filter((r) => r.method === 'GET' && r.url.includes('/api/v1/audit-logs')).pop();
    assert(sent, 'no audit-log request');
    const q = new URL(sent.url).searchParams;
    const want = { actor: f.actor, target_type: f.targetType, target_id: f.targetId, stream: f.stream, q: f.q, from: FIXTURE.from, to: FIXTURE.to };
    for (const [k, v] of Object.entries(want)) assert(q.get(k) === v, `the request has ${k}=${q.get(k)}, expected ${v}`);
    const api = (await apiGet(TOKENS.admin, `/api/v1/audit-logs?${new URLSearchParams({ ...want, limit: q.get('limit') })}`)).data.map((e) => String(e.id));
    const shown = await page.locator('tr.event-row').evaluateAll((rows) => rows.map((r) => r.dataset.eventId));
    assert(api.length > 0 && api.includes(String(sample.id)), `the API found ${api.length} events, not the sample`);
    assert(JSON.stringify(shown) === JSON.stringify(api), `rows ${shown.join(',')} are not the API's ${api.join(',')}`);
  } finally {
    await showLog(page, FIXTURE);
  }
});

await check('export dialog: prefilled with the viewer\'s filters; the estimate follows filter changes, debounced (one request after typing stops)', async () => {
  await showLog(page, { ...FIXTURE, action: 'user.*' });
  try {
    await prefilledAndDebounced();
  } finally {
    // The checks after this one start from the whole fixture window.
    await recover();
    await showLog(page, FIXTURE);
  }
});

async function prefilledAndDebounced() {
  await openExport(page);
  assert((await page.locator('#exp-from').inputValue()) === FIXTURE.from, 'From not prefilled');
  assert((await page.locator('#exp-to').inputValue()) === FIXTURE.to, 'To not prefilled');
  assert((await page.locator('#exp-actions').inputValue()) === 'user.*', 'Action not prefilled from the viewer');
  const first = await waitEstimate(page);
  const api1 = await estimate(TOKENS.admin, { from: FIXTURE.from, to: FIXTURE.to, actions: ['user.*'] });
  assert(first === api1, `estimate shows ${first}, the API counts ${api1} for user.*`);
  const mark = page.requests.length;
  await page.locator('#exp-actions').fill('');
  // 60 ms between keys, well inside the debounce: one request at the end.
  await page.locator('#exp-actions').pressSequentially('user.login', { delay: 60 });
  const typedAt = Date.now();
  const second = await waitEstimate(page);
  const settledAfter = Date.now() - typedAt;
  const posts = page.requests.slice(mark).filter((r) => r.url.endsWith('/api/v1/exports/estimate'));
  assert(posts.length === 1, `${posts.length} estimate requests while typing "user.login" (expected 1, debounced)`);
  assert(JSON.stringify(JSON.parse(posts[0].body).filters.actions) === '["user.login"]', `the estimate asked ${posts[0].body}`);
  const api2 = await estimate(TOKENS.admin, { from: FIXTURE.from, to: FIXTURE.to, actions: ['user.login'] });
  assert(second === api2 && second !== first, `estimate shows ${second}, the API counts ${api2} for user.login (was ${first})`);
  assert(settledAfter < 5000, `the estimate took ${settledAfter} ms to follow`);
  await page.locator('#exp-lifetime-note', { hasText: '24 hours' }).waitFor();
  await page.locator('#exp-cancel').click();
  await page.locator('#export-dialog').waitFor({ state: 'detached' });
}

await check('export dialog: From after To is blocked — error beside To, no request sent', async () => {
  await openExport(page);
  await page.locator('#exp-estimate-count[data-count]').waitFor();
  await shot(page, 'desktop-export-dialog');
  const before = page.requests.length;
  await fillExportRange(page, { from: '2025-08-01', to: '2025-07-01' });
  await page.waitForTimeout(700); // past the estimate's debounce
  await page.locator('#exp-submit').click();
  await page.locator('#exp-to-error', { hasText: 'From is after To' }).waitFor();
  assert((await page.locator('#exp-to').getAttribute('aria-invalid')) === 'true', 'To not marked invalid');
  assert(await page.locator('#export-dialog[open]').isVisible(), 'the dialog closed');
  const sent = page.requests.slice(before).filter((r) => r.url.includes('/api/v1/exports'));
  assert(sent.length === 0, `requests were sent: ${sent.map((r) => `${r.method} ${r.url}`).join(', ')}`);
});

await check('small export: the browser downloads a CSV whose rows match the estimate, the To day included', async () => {
  if ((await page.locator('#export-dialog[open]').count()) === 0) await openExport(page);
  await fillExportRange(page, SMALL);
  const expected = await waitEstimate(page);
  assert(expected > 0 && expected < 500, `estimate ${expected} is not a small export`);
  const [download] = await Promise.all([page.waitForEvent('download'), page.locator('#exp-submit').click()]);
  const file = await download.path();
  const text = fs.readFileSync(file, 'utf8').replace(/^\uFEFF/, '');
  const rows = parseCsv(text).filter((r) => r.length > 1);
  assert(rows[0][0] === 'id' && rows[0].includes('action'), `unexpected header ${rows[0].slice(0, 4)}`);
  assert(rows.length - 1 === expected, `${rows.length - 1} rows, estimate said ${expected}`);
  assert(/\.csv$/.test(download.suggestedFilename()), `file name ${download.suggestedFilename()}`);
  // The To day is included: every event of 2025-07-31 (UTC) is in the file.
  const at = rows[0].findIndex((c) => c.startsWith('occurred_at'));
  assert(at >= 0, `no occurred_at column in ${rows[0].join(',')}`);
  // The dialog's time zone (the browser's by default) reached the file.
  assert(rows[0][at] === 'occurred_at (Europe/Paris)', `timestamp column "${rows[0][at]}", expected the dialog's zone Europe/Paris`);
  const days = rows.slice(1).map((r) => utcDay(Date.parse(r[at])));
  const lastDay = (await apiGet(TOKENS.admin, `/api/v1/audit-logs?from=${SMALL.to}&to=${SMALL.to}&limit=1000`)).data.length;
  assert(lastDay > 0, `the fixtures have no event on ${SMALL.to}`);
  assert(days.filter((d) => d === SMALL.to).length === lastDay, `${days.filter((d) => d === SMALL.to).length} rows of the To day ${SMALL.to}, the log has ${lastDay}`);
  assert(days.every((d) => d >= SMALL.from && d <= SMALL.to), `a row outside ${SMALL.from}..${SMALL.to}: ${days.find((d) => d < SMALL.from || d > SMALL.to)}`);
  await page.locator('#export-dialog').waitFor({ state: 'detached' });
  await page.locator('#toast', { hasText: 'Downloaded' }).waitFor();
});

await check('export errors: the API\'s message appears beside its field (range too long, time zone, unverified e-mail)', async () => {
  await openExport(page);
  await fillExportRange(page, { from: '2024-01-01', to: '2025-12-31' });
  await page.locator('#exp-to-error', { hasText: 'longer than 366 days' }).waitFor();
  await fillExportRange(page, SMALL);
  await waitEstimate(page);
  await page.locator('#exp-timezone').fill('Mars/Olympus_Mons');
  await page.locator('#exp-submit').click();
  await page.locator('#exp-timezone-error', { hasText: 'IANA' }).waitFor();
  assert((await page.locator('#exp-timezone').getAttribute('aria-invalid')) === 'true', 'time zone not marked invalid');
  await page.locator('#exp-timezone').fill('Europe/Paris');
  await fillExportRange(page, FIXTURE);
  await page.locator('#exp-email').fill('stranger@elsewhere.example');
  await page.locator('#exp-submit').click();
  await page.locator('#exp-email-error', { hasText: 'verified' }).waitFor();
  assert(await page.evaluate(() => document.activeElement?.id === 'exp-email'), 'focus not moved to the e-mail field');
  await page.locator('#exp-cancel').click();
  await page.locator('#export-dialog').waitFor({ state: 'detached' });
});

let bellBefore = 0;
await check('no events: the estimate says 0 and Export explains there is nothing to export (no file, no job)', async () => {
  await openExport(page);
  await fillExportRange(page, { from: '2024-01-01', to: '2024-01-02' });
  assert((await waitEstimate(page)) === 0, 'the estimate is not 0');
  assert((await page.locator('#exp-estimate-note').textContent()).includes('No events match'), 'the estimate does not say no events match');
  let downloaded = false;
  const onDownload = () => {
    downloaded = true;
  };
  page.on('download', onDownload);
  try {
    await page.locator('#exp-submit').click();
    await page.locator('#exp-warning', { hasText: 'nothing to export' }).waitFor();
    assert(await page.locator('#export-dialog[open]').isVisible(), 'the dialog closed');
    await page.waitForTimeout(300);
    assert(!downloaded, 'a file was downloaded for zero events');
  } finally {
    page.off('download', onDownload);
  }
  await page.locator('#exp-cancel').click();
  await page.locator('#export-dialog').waitFor({ state: 'detached' });
});

let twoRecipientsJob = null;
await check('large export: "Export in progress" names the recipients and the link lifetime of the 202 answer, completes, and its link downloads the file', async () => {
  bellBefore = await unread(page);
  await openExport(page);
  await fillExportRange(page, FIXTURE);
  await page.locator('#exp-format-jsonl').check();
  // Typed in mixed case and repeated: the server answers them normalized,
  // so the panel shows what the server will use, not what was typed.
  const typed = `${me.admin.email.toUpperCase()}, ${me.compliance.email}, ${me.admin.email}`;
  await page.locator('#exp-email').fill(typed);
  const expected = await waitEstimate(page);
  assert((await page.locator('#exp-estimate-count').getAttribute('data-mode')) === 'async', 'estimate does not say async');
  const [resp] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/api/v1/exports') && r.request().method() === 'POST'),
    page.locator('#exp-submit').click(),
  ]);
  assert(resp.status() === 202, `POST /exports answered ${resp.status()}`);
  const job = await resp.json();
  twoRecipientsJob = job;
  const want = [me.admin.email, me.compliance.email].sort();
  assert(JSON.stringify(job.recipients) === JSON.stringify(want), `the 202 answer names ${JSON.stringify(job.recipients)}, expected ${JSON.stringify(want)}`);
  assert(job.link_ttl_seconds === 86_400, `link_ttl_seconds ${job.link_ttl_seconds}`);
  await page.locator('#exp-in-progress').waitFor();
  assert((await page.locator('#export-title').textContent()) === 'Export in progress', 'no "Export in progress" heading');
  await shot(page, 'desktop-export-in-progress');
  await axe(page, 'export in progress panel');
  const shown = await page.locator('#exp-recipients').textContent();
  assert(shown === job.recipients.join(', '), `the panel names "${shown}", the answer ${job.recipients.join(', ')} (typed: ${typed})`);
  assert((await page.locator('#exp-lifetime').textContent()).includes('24 hours'), `no 24 hours link lifetime: ${await page.locator('#exp-lifetime').textContent()}`);
  await page.locator('#exp-progress').waitFor();
  await page.locator('#exp-download').waitFor({ timeout: 30_000 });
  const prog = await page.locator('#exp-progress').evaluate((p) => [p.value, p.max]);
  assert(prog[0] === prog[1], `progress ${prog[0]}/${prog[1]} at completion`);
  await shot(page, 'desktop-export-ready');
  const [download] = await Promise.all([page.waitForEvent('download'), page.locator('#exp-download').click()]);
  const lines = fs.readFileSync(await download.path(), 'utf8').split('\n').filter(Boolean);
  assert(lines.length === expected, `${lines.length} lines, estimate said ${expected}`);
  assert(lines.every((l) => JSON.parse(l).organization_id === 'acme'), 'a line is not an acme event');
  const lifetime = await page.locator('#exp-lifetime').textContent();
  assert(lifetime.includes('24 hours') && (await page.locator('#exp-lifetime time').count()) === 1, `completed panel lifetime: ${lifetime}`);
  await page.locator('#exp-return').click();
});

await check('"Export in progress" takes the lifetime and recipients from the job, not from the form (answers altered in transit: 1 h 30 min, another address)', async () => {
  const alter = async (route) => {
    const r = await route.fetch();
    const body = await r.json();
    if (body && typeof body === 'object' && 'link_ttl_seconds' in body) {
      body.link_ttl_seconds = 5400;
      body.recipients = ['route-check@acme.example'];
    }
    await route.fulfill({ response: r, json: body });
  };
  const isJob = (u) => /\/api\/v1\/exports(\/[0-9A-Z]+)?$/.test(new URL(u).pathname);
  await page.route(isJob, alter);
  try {
    await openExport(page);
    await fillExportRange(page, FIXTURE);
    await page.locator('#exp-format-json').check();
    await waitEstimate(page);
    await page.locator('#exp-submit').click();
    await page.locator('#exp-in-progress').waitFor();
    const recipients = await page.locator('#exp-recipients').textContent();
    assert(recipients === 'route-check@acme.example', `the panel names "${recipients}", not the answer's recipients`);
    const lifetime = await page.locator('#exp-lifetime').textContent();
    assert(lifetime.includes('1 hour 30 minutes') && !lifetime.includes('24'), `the panel says "${lifetime}", not the answer's 5400 s`);
    await page.locator('#exp-download').waitFor({ timeout: 30_000 });
    const done = await page.locator('#exp-lifetime').textContent();
    assert(done.includes('1 hour 30 minutes'), `the completed panel says "${done}"`);
    await page.locator('#exp-return').click();
  } finally {
    await page.unroute(isJob, alter);
  }
});

await check('notifications: the bell counts the new notification; mark read; Escape closes the list', async () => {
  await page.waitForFunction((n) => Number(document.querySelector('#bell').dataset.unread) >= n + 1, bellBefore, { timeout: 20_000 });
  assert((await page.locator('#bell-count').isVisible()) && Number(await page.locator('#bell-count').textContent()) === (await unread(page)), 'badge does not show the count');
  await page.locator('#bell').click();
  const item = page.locator('.notif-item.unread[data-kind="export_completed"]').first();
  await item.waitFor();
  await shot(page, 'desktop-notifications');
  const n = await unread(page);
  const nid = await item.getAttribute('data-id');
  await item.locator('button', { hasText: 'Mark read' }).click();
  await page.waitForFunction((k) => Number(document.querySelector('#bell').dataset.unread) === k - 1, n);
  await page.locator(`.notif-item[data-id="${nid}"]:not(.unread)`).waitFor();
  await page.keyboard.press('Escape');
  assert(await page.locator('#notif-panel').isHidden(), 'Escape did not close the panel');
  assert(await page.evaluate(() => document.activeElement?.id === 'bell'), 'focus did not return to the bell');
});

let rawBulkJob = null;
let readableBulkJob = null;
await check('duplicate export: a raw CSV beside a running readable CSV of the same filters is not a duplicate; the same readable CSV again asks to restart; confirming answers 202 with restarted: true', async () => {
  const how = await bulk;
  assert(how, 'bulk events missing');
  await showLog(page, BULK);
  const start = async (profile) => {
    await openExport(page);
    await page.locator(`#exp-profile-${profile}`).check();
    const [resp] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith('/api/v1/exports') && r.request().method() === 'POST'),
      page.locator('#exp-submit').click(),
    ]);
    return resp;
  };
  const first = await start('readable');
  assert(first.status() === 202, `readable CSV answered ${first.status()}`);
  readableBulkJob = (await first.json()).id;
  await page.locator('#exp-in-progress').waitFor();
  await page.locator('#exp-return').click();
  // Other options, same filters and format: a second export, no question.
  const other = await start('raw');
  assert(other.status() === 202, `raw CSV answered ${other.status()} ${(await other.text()).slice(0, 160)}`);
  rawBulkJob = (await other.json()).id;
  assert(rawBulkJob !== readableBulkJob, 'the raw CSV reused the readable job');
  await page.locator('#exp-in-progress').waitFor();
  assert((await page.locator('#duplicate-dialog').count()) === 0, 'a duplicate confirm for different options');
  assert((await page.locator('#exp-restarted').count()) === 0, 'the raw CSV restarted the readable one');
  await page.locator('#exp-return').click();
  const again = await start('readable');
  assert(again.status() === 409 && (await again.json()).error?.job_id === readableBulkJob, `the same readable CSV answered ${again.status()}`);
  await page.locator('#duplicate-dialog[open]').waitFor();
  assert((await page.locator('#duplicate-dialog-message').textContent()).includes('already in progress'), 'confirm text');
  await shot(page, 'desktop-duplicate-confirm');
  await axe(page, 'duplicate confirm dialog');
  const [resp] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/api/v1/exports') && r.request().method() === 'POST'),
    page.locator('#duplicate-dialog-confirm').click(),
  ]);
  assert(JSON.parse(resp.request().postData()).restart === true, 'the second request does not ask restart: true');
  const body = await resp.json();
  assert(resp.status() === 202 && body.restarted === true, `answer ${resp.status()} ${JSON.stringify(body).slice(0, 120)}`);
  assert(body.id === readableBulkJob, `restarted ${body.id}, not the readable job ${readableBulkJob}`);
  await page.locator('#exp-restarted').waitFor();
  await shot(page, 'desktop-export-restarted');
});

await check('jobs page: running jobs show progress and update themselves (no click); restart and cancel work; polling stops when none runs', async () => {
  await page.locator('#exp-view-jobs').click();
  await page.locator('#jobs-table').waitFor();
  const rowOf = (id) => page.locator(`#jobs-table tr[data-job-id="${id}"]`);
  const readable = rowOf(readableBulkJob);
  await readable.waitFor();
  assert(['exporting', 'uploading'].includes(await readable.getAttribute('data-state')), 'the restarted readable job is not running');
  assert(await readable.locator('progress').isVisible(), 'no progress bar');
  await shot(page, 'desktop-jobs-running');
  // Restart the readable one from its row at once (the duplicate check
  // restarted it a moment ago: it runs for seconds yet), watch the list
  // follow it without a click, then cancel it; the raw one runs to the end.
  const act = async (action) => {
    await readable.locator(`button[data-action="${action}"]`).click();
    await page.locator('#confirm-dialog[open]').waitFor();
    const [resp] = await Promise.all([
      page.waitForResponse((r) => r.url().includes(`/api/v1/exports/${readableBulkJob}`) && r.request().method() !== 'GET'),
      page.locator('#confirm-dialog-confirm').click(),
    ]);
    return resp;
  };
  const restarted = await act('restart');
  assert(restarted.status() === 202 && restarted.request().method() === 'POST' && restarted.url().endsWith('/restart'),
    `restart answered ${restarted.status()} ${(await restarted.text()).slice(0, 160)}`);
  // Updates itself: the progress moves without a click, by polling.
  const mark = page.requests.length;
  const before = await readable.locator('.progress-text').textContent();
  await page.waitForFunction(
    ([id, text]) => {
      const r = document.querySelector(`#jobs-table tr[data-job-id="${id}"]`);
      return r && (r.querySelector('.progress-text')?.textContent !== text || !['exporting', 'uploading'].includes(r.dataset.state));
    },
    [readableBulkJob, before],
    { timeout: 20_000 },
  );
  // And it keeps asking while the job runs (the restart itself reloaded
  // the list once; polling asks again and again).
  const listPolls = () => page.requests.slice(mark).filter((r) => r.method === 'GET' && new URL(r.url).pathname === '/api/v1/exports').length;
  for (let i = 0; i < 50 && listPolls() < 2; i += 1) await page.waitForTimeout(100);
  assert(listPolls() >= 2, `${listPolls()} list requests in 5 s while a job runs: not polling`);
  const cancelled = await act('cancel');
  assert(cancelled.status() === 200 && cancelled.request().method() === 'DELETE', `cancel answered ${cancelled.status()} ${(await cancelled.text()).slice(0, 160)}`);
  await page.locator(`#jobs-table tr[data-job-id="${readableBulkJob}"][data-state="failed"]`).waitFor({ timeout: 20_000 });
  assert((await readable.textContent()).toLowerCase().includes('cancel'), 'the cancelled job does not say so');
  await page.locator(`#jobs-table tr[data-job-id="${rawBulkJob}"][data-state="completed"]`).waitFor({ timeout: 40_000 });
  const rawJob = await apiGet(TOKENS.admin, `/api/v1/exports/${rawBulkJob}`);
  assert(rawJob.record_count === BULK.rows && rawJob.attempt >= 1, `the raw job ended with ${rawJob.record_count} records, not ${BULK.rows}`);
  await page.locator('#jobs-status', { hasText: 'not refreshing' }).waitFor({ timeout: 20_000 });
  const done = rowOf(rawBulkJob);
  assert(await done.locator('a.download-link').isVisible(), 'the completed job has no download link');
  assert((await done.locator('progress').evaluate((p) => p.value === p.max)), 'completed job progress not full');
  const idle = page.requests.length;
  await page.waitForTimeout(2500);
  // The bell polls on its own every 15 s; nothing else may.
  const late = page.requests.slice(idle).filter((r) => r.url.includes('/api/v1/') && !r.url.includes('/api/v1/notifications'));
  assert(late.length === 0, `still polling: ${late.map((r) => `${r.method} ${new URL(r.url).pathname}`).join(', ')} in 2.5 s`);
  await shot(page, 'desktop-jobs');
});

await check('schedules page: next fire times and last run; an admin can run one now', async () => {
  await page.locator('#mainnav a[data-route="schedules"]').click();
  await page.locator('#schedules-status:not(:empty)').waitFor();
  await page.waitForFunction(() => !/Loading/.test(document.querySelector('#schedules-status').textContent));
  const cards = page.locator('#schedule-list article.card');
  const count = await cards.count();
  const listed = (await apiGet(TOKENS.admin, '/api/v1/schedules')).data.length;
  assert(count === listed, `${count} cards for ${listed} schedules`);
  if (count > 0) {
    const card = cards.first();
    assert((await card.locator('.next-fires time').count()) >= 1, 'no next fire times');
    assert((await card.locator('.last-run').textContent()).length > 0, 'no last run');
    await card.locator('button.run-now').click();
    await card.locator('[role=status]', { hasText: 'Started export job' }).waitFor();
  } else {
    assert((await page.locator('#schedules-status').textContent()).includes('No scheduled exports'), 'empty state missing');
  }
  await shot(page, 'desktop-schedules');
});

await check('notifications: "Mark all read" clears the count (the cancelled job notified a failure)', async () => {
  await page.waitForFunction(() => Number(document.querySelector('#bell').dataset.unread) >= 1, null, { timeout: 20_000 });
  await page.locator('#bell').click();
  await page.locator('.notif-item.unread[data-kind="export_failed"]').first().waitFor();
  await page.locator('#notif-read-all').click();
  await page.waitForFunction(() => document.querySelector('#bell').dataset.unread === '0');
  assert(await page.locator('#bell-count').isHidden(), 'badge still shown at 0');
  assert((await page.locator('.notif-item.unread').count()) === 0, 'items still unread');
  await page.keyboard.press('Escape');
});

await check('compliance officer: export controls shown, "Run now" not; a fourth concurrent export explains the limit of 3', async () => {
  const p = await newPage({ label: 'compliance' });
  await signIn(p, TOKENS.compliance);
  assert(await p.locator('#export-open').isVisible(), 'no Export button');
  // The dialog is ready first; then three background exports of this user
  // start (jobs of one filter set and format would be duplicates, not
  // "too many", so the dialog's filters differ), then the fourth is asked.
  const mine = [];
  try {
    await showLog(p, { ...BULK, action: 'record.*' });
    await openExport(p);
    await waitEstimate(p);
    for (const format of ['json', 'jsonl', 'csv']) {
      const r = await fetch(`${BASE_URL}/api/v1/exports`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${TOKENS.compliance}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ format, mode: 'async', filters: { from: BULK.from, to: BULK.to } }),
      });
      if (r.status === 202) mine.push((await r.json()).id);
    }
    assert(mine.length === 3, `could not start 3 exports (${mine.length})`);
    await p.locator('#exp-submit').click();
    await p.locator('#exp-error', { hasText: 'You already have 3 exports in progress' }).waitFor();
    await p.locator('#exp-cancel').click();
  } finally {
    for (const id of mine) {
      await fetch(`${BASE_URL}/api/v1/exports/${id}`, { method: 'DELETE', headers: { Authorization: `Bearer ${TOKENS.compliance}` } });
    }
  }
  assert(await p.locator('#mainnav a[data-route="jobs"]').isVisible(), 'no Jobs link');
  // Their Jobs page: only their own jobs, each "(you)".
  await p.locator('#mainnav a[data-route="jobs"]').click();
  await p.locator('#jobs-status', { hasText: JOBS_LOADED }).waitFor();
  assert((await p.locator('#jobs-title').textContent()) === 'Your exports', 'compliance jobs heading');
  const requesters = await p.locator('#jobs-table td.job-requester').evaluateAll((tds) => tds.map((td) => [td.dataset.requester, td.textContent]));
  assert(requesters.length >= 3, `${requesters.length} jobs listed for the compliance officer`);
  const bad = requesters.filter(([key, text]) => key !== `user:${me.compliance.id}` || !text.includes(`${me.compliance.name} (you)`));
  assert(bad.length === 0, `rows not the compliance officer's own: ${JSON.stringify(bad.slice(0, 2))}`);
  await p.locator('#mainnav a[data-route="schedules"]').click();
  await p.waitForFunction(() => !/Loading/.test(document.querySelector('#schedules-status')?.textContent ?? 'Loading'));
  assert((await p.locator('button.run-now').count()) === 0, 'Run now shown to compliance');
  await p.context().close();
});

await check('jobs page (admin): every job of the organization names who requested it and where the link is e-mailed, as the API says', async () => {
  await page.locator('#mainnav a[data-route="jobs"]').click();
  await page.locator('#jobs-status', { hasText: JOBS_LOADED }).waitFor();
  assert((await page.locator('#jobs-title').textContent()) === 'Exports of your organization', 'admin jobs heading');
  const listed = (await apiGet(TOKENS.admin, '/api/v1/exports?limit=200')).data;
  const theirs = listed.filter((j) => j.requester === `user:${me.compliance.id}`);
  assert(theirs.length >= 3, `the admin's list has ${theirs.length} jobs of the compliance officer`);
  // Names come from a lookup after the list: wait for one of theirs.
  await page.locator(`#jobs-table tr[data-job-id="${theirs[0].id}"] td.job-requester`, { hasText: me.compliance.name }).waitFor();
  const rows = await page.locator('#jobs-table tbody tr[data-job-id]').evaluateAll((trs) =>
    trs.map((tr) => ({
      id: tr.dataset.jobId,
      requester: tr.querySelector('td.job-requester')?.dataset.requester,
      who: tr.querySelector('td.job-requester')?.textContent,
      to: tr.querySelector('.job-recipients')?.textContent ?? null,
      options: tr.querySelector('.job-options')?.textContent ?? '',
    })),
  );
  assert(rows.length === listed.length, `${rows.length} rows for ${listed.length} jobs`);
  const names = { [`user:${me.admin.id}`]: `${me.admin.name} (you)`, [`user:${me.compliance.id}`]: me.compliance.name };
  for (const j of listed) {
    const r = rows.find((x) => x.id === j.id);
    assert(r, `job ${j.id} not listed`);
    assert(r.requester === j.requester, `job ${j.id}: requester ${r.requester}, API ${j.requester}`);
    const name = names[j.requester] ?? (j.requester.startsWith('schedule:') ? j.requester.slice(9) : null);
    assert(name && r.who.includes(name), `job ${j.id} of ${j.requester}: shows "${r.who}", expected ${name}`);
    const to = j.recipients.length ? j.recipients.join(', ') : 'Not e-mailed';
    assert(r.to?.includes(to), `job ${j.id}: e-mail line "${r.to}", API recipients ${JSON.stringify(j.recipients)}`);
  }
  const two = rows.find((x) => x.id === twoRecipientsJob?.id);
  assert(two?.to?.includes(`${me.admin.email}, ${me.compliance.email}`), `the two-recipient job shows "${two?.to}"`);
  const readableRow = rows.find((x) => x.id === readableBulkJob);
  const rawRow = rows.find((x) => x.id === rawBulkJob);
  assert(readableRow?.options.includes('readable') && rawRow?.options.includes('raw'), `options: readable "${readableRow?.options}", raw "${rawRow?.options}"`);
  await noOverflow(page, 'jobs');
  await tablesFit(page, 'jobs at 1280×800');
  await shot(page, 'desktop-jobs-requesters');
  await axe(page, 'jobs with requesters and recipients');
});

await check('viewer: sees the log but no export controls (no Export, Jobs, Schedules, cancel or restart)', async () => {
  const p = await newPage({ label: 'viewer' });
  await signIn(p, TOKENS.viewer);
  await showLog(p, FIXTURE);
  assert((await p.locator('tr.event-row').count()) > 0, 'viewer sees no events');
  assert((await p.locator('#export-open').count()) === 0, 'Export button shown to a viewer');
  assert(await p.locator('#mainnav a[data-route="jobs"]').isHidden(), 'Jobs link shown to a viewer');
  assert(await p.locator('#mainnav a[data-route="schedules"]').isHidden(), 'Schedules link shown to a viewer');
  await p.goto(`${BASE_URL}/#/jobs`);
  await p.waitForFunction(() => location.hash === '#/logs');
  assert((await p.locator('[data-action="cancel"], [data-action="restart"], #export-dialog').count()) === 0, 'export controls reachable');
  // And the server agrees: a viewer's export request is refused.
  const refused = await call('POST', '/api/v1/exports', { token: TOKENS.viewer, body: { format: 'csv', filters: { from: SMALL.from, to: SMALL.to } } });
  assert(refused.status === 403, `a viewer's POST /api/v1/exports answered ${refused.status}`);
  await shot(p, 'desktop-viewer');
  await p.context().close();
});

// Checks below run without the CSP (bypassCSP): only the console's own
// rendering stands between event text and the DOM, and axe can be injected.
const open = await newPage({ bypassCSP: true, label: 'no-csp' });

await check('XSS: HTML in an event (<img onerror>, <script>, <svg onload>) and in a job\'s text filter renders as inert text in the log, the JSON (secret redacted), the export dialog, the Jobs page and the notifications', async () => {
  ingestXssEvent();
  const dialogs = [];
  open.on('dialog', (d) => {
    dialogs.push(d.message());
    d.dismiss().catch(() => {});
  });
  // A job whose text filter is the payload: the Jobs page and the
  // notification describe its filters.
  const created = await call('POST', '/api/v1/exports', {
    token: TOKENS.admin,
    body: { format: 'json', mode: 'async', filters: { from: XSS_DAY, to: XSS_DAY, q: XSS } },
  });
  assert(created.status === 202, `the payload job answered ${created.status} ${created.text.slice(0, 160)}`);
  const xssJob = JSON.parse(created.text).id;
  await signIn(open, TOKENS.admin);
  await showLog(open, { from: XSS_DAY, to: XSS_DAY });
  const row = open.locator('tr.event-row').first();
  await row.waitFor();
  await row.locator('button.expand').click();
  const json = await open.locator('tr.detail-row pre').first().textContent();
  assert(json.includes('<iframe src=\\"javascript:'), 'the JSON is not shown literally');
  assert(!json.includes(XSS_SECRET) && /"password": "\[REDACTED\]"/.test(json), 'the secret under "password" is not redacted in the JSON');
  await open.locator('#log-q').fill(XSS);
  await open.locator('#export-open').click(); // the dialog shows the same filters
  assert((await open.locator('#exp-q').inputValue()) === XSS, 'the payload is not the text filter of the dialog');
  await open.locator('#exp-cancel').click();
  await open.locator('#log-q').fill('');
  for (let i = 0; i < 100 && ['exporting', 'uploading'].includes((await apiGet(TOKENS.admin, `/api/v1/exports/${xssJob}`)).state); i += 1) {
    await open.waitForTimeout(100);
  }
  await open.locator('#mainnav a[data-route="jobs"]').click();
  const jobRow = open.locator(`#jobs-table tr[data-job-id="${xssJob}"]`);
  await jobRow.waitFor();
  assert((await jobRow.textContent()).includes(XSS), 'the Jobs page does not show the text filter literally');
  await open.locator('#bell').click();
  const notice = open.locator(".notif-item").filter({ hasText: XSS }).first();
  await notice.waitFor();
  await open.waitForTimeout(500);
  const fired = await open.evaluate(() => window.__xssFired);
  assert(fired === undefined, 'a payload ran (window.__xssFired set)');
  assert(dialogs.length === 0, `a dialog opened: ${dialogs.join(', ')}`);
  const injected = await open.evaluate(() => document.querySelectorAll(':is(main, #notif-panel, dialog) :is(img, svg, iframe, script)').length);
  assert(injected === 0, `${injected} elements from event text in the DOM`);
  await open.keyboard.press('Escape');
  await open.locator('#mainnav a[data-route="logs"]').click();
  await showLog(open, { from: XSS_DAY, to: XSS_DAY });
  assert((await open.locator('tr.event-row').first().locator('td').nth(3).textContent()).includes(XSS), 'the actor name is not shown literally');
});

const axePages = [
  ['sign-in', async () => {
    await open.locator('#sign-out').click();
    await open.locator('#signin-token').waitFor();
  }],
  ['audit log (rows, one expanded)', async () => {
    await open.locator('#signin-token').fill(TOKENS.admin);
    await open.locator('form button[type=submit]').click();
    await showLog(open, FIXTURE);
    await open.locator('tr.event-row button.expand').first().click();
  }],
  ['export dialog', async () => {
    await openExport(open);
    await open.locator('#exp-estimate-count[data-count]').waitFor();
    for (const sel of ['#exp-submit', '#exp-cancel', '#exp-estimate-count']) await inView(open, sel, 'desktop export dialog');
  }],
  ['export dialog with errors', async () => {
    await fillExportRange(open, { from: '2025-08-01', to: '2025-07-01' });
    await open.locator('#exp-submit').click();
    await open.locator('#exp-to-error:not(:empty)').waitFor();
  }],
  ['notifications panel', async () => {
    await open.locator('#exp-cancel').click();
    await open.locator('#bell').click();
    await open.locator('#notif-panel').waitFor();
  }],
  ['jobs', async () => {
    await open.keyboard.press('Escape');
    await open.locator('#mainnav a[data-route="jobs"]').click();
    await open.locator('#jobs-status', { hasText: JOBS_LOADED }).waitFor();
  }],
  ['schedules', async () => {
    await open.locator('#mainnav a[data-route="schedules"]').click();
    await open.waitForFunction(() => !/Loading/.test(document.querySelector('#schedules-status')?.textContent ?? 'Loading'));
  }],
];
for (const [name, go] of axePages) {
  await check(`desktop 1280×800: no serious or critical axe-core violations, no sideways scrolling — ${name}`, async () => {
    await go();
    await axe(open, name);
    await noOverflow(open, name);
    await tablesFit(open, name);
  });
}

const phone = await newPage({ viewport: PHONE, label: 'phone' });
const phonePages = [
  ['sign-in', async () => {
    await phone.goto(`${BASE_URL}/`);
    await phone.locator('#signin-token').waitFor();
  }],
  ['audit log', async () => {
    await phone.locator('#signin-token').fill(TOKENS.admin);
    await phone.locator('form button[type=submit]').click();
    await phone.locator('#topbar').waitFor({ state: 'visible' });
    await showLog(phone, FIXTURE);
    await phone.locator('tr.event-row button.expand').first().click();
  }],
  ['export dialog', async () => {
    await openExport(phone);
    await phone.locator('#exp-estimate-count[data-count]').waitFor();
    // Usable: Export, Cancel and the estimate stay in view while the form scrolls.
    await phone.locator('#exp-email').scrollIntoViewIfNeeded();
    for (const sel of ['#exp-submit', '#exp-cancel', '#exp-estimate-count', '#exp-email']) await inView(phone, sel, 'phone export dialog');
  }],
  ['notifications', async () => {
    await phone.locator('#exp-cancel').click();
    await phone.locator('#bell').click();
    await phone.locator('#notif-panel').waitFor();
  }],
  ['jobs', async () => {
    await phone.keyboard.press('Escape');
    await phone.locator('#mainnav a[data-route="jobs"]').click();
    await phone.locator('#jobs-status', { hasText: JOBS_LOADED }).waitFor();
  }],
  ['schedules', async () => {
    await phone.locator('#mainnav a[data-route="schedules"]').click();
    await phone.waitForFunction(() => !/Loading/.test(document.querySelector('#schedules-status')?.textContent ?? 'Loading'));
  }],
];
for (const [name, go] of phonePages) {
  await check(`phone 390×844: no horizontal overflow, no serious or critical axe-core violations — ${name}`, async () => {
    await go();
    await noOverflow(phone, name);
    await axe(phone, `phone ${name}`);
    await shot(phone, `phone-${name.replace(/\W+/g, '-')}`);
  });
}

await check('keyboard: the export dialog opens, traps focus and closes with Escape, focus returns to Export', async () => {
  await page.locator('#mainnav a[data-route="logs"]').click();
  await page.locator('#export-open').focus();
  await page.keyboard.press('Enter');
  await page.locator('#export-dialog[open]').waitFor();
  assert(await page.evaluate(() => document.activeElement?.id === 'exp-from'), 'focus is not on From');
  // Past the last control focus may rest on the document (no browser UI
  // in headless), but never on the page behind the modal.
  for (let i = 0; i < 40; i += 1) {
    await page.keyboard.press('Tab');
    const where = await page.evaluate(() => {
      const a = document.activeElement;
      return a === document.body || document.querySelector('#export-dialog').contains(a) ? null : a.outerHTML.slice(0, 80);
    });
    assert(where === null, `focus reached the page behind the dialog: ${where}`);
  }
  await page.keyboard.press('Escape');
  await page.locator('#export-dialog').waitFor({ state: 'detached' });
  assert(await page.evaluate(() => document.activeElement?.id === 'export-open'), 'focus did not return to Export');
});

await check('sign-out forgets the token', async () => {
  await page.locator('#sign-out').click();
  await page.locator('#signin-token').waitFor();
  const left = await page.evaluate(() => Object.values(sessionStorage));
  assert(!left.includes(TOKENS.admin), 'token still in sessionStorage');
});

await check('keyboard: sign in by typing the token and pressing Enter; the bell opens with Enter, closes with Escape', async () => {
  await page.locator('#signin-token').waitFor();
  assert(await page.evaluate(() => document.activeElement?.id === 'signin-token'), 'the token field does not have focus');
  await page.keyboard.type(TOKENS.admin);
  await page.keyboard.press('Enter');
  await page.locator('#topbar').waitFor({ state: 'visible' });
  await page.locator('#bell').focus();
  await page.keyboard.press('Enter');
  await page.locator('#notif-panel').waitFor();
  assert((await page.locator('#bell').getAttribute('aria-expanded')) === 'true', 'aria-expanded not set on the bell');
  await page.keyboard.press('Escape');
  assert(await page.locator('#notif-panel').isHidden(), 'Escape did not close the panel');
  assert(await page.evaluate(() => document.activeElement?.id === 'bell'), 'focus did not return to the bell');
  await page.locator('#sign-out').click();
  await page.locator('#signin-token').waitFor();
});

await check('security headers (CSP without inline script and with frame-ancestors \'none\', nosniff, no-referrer) on every response the browser got and on console, API, download and error answers', async () => {
  const seen = await Promise.all(responses.map(async (r) => ({ ...r, headers: await r.headers })));
  const read = seen.filter((r) => r.headers);
  const kinds = new Set(read.map((r) => new URL(r.url).pathname.replace(/^\/api\/v1\/exports\/[^/]+/, '/api/v1/exports/{id}').replace(/\/download\/.*/, '/download')));
  assert(read.length >= 50 && kinds.has('/') && kinds.has('/console/app.js') && kinds.has('/api/v1/me'), `only ${read.length} responses seen (${[...kinds].slice(0, 8).join(', ')})`);
  const bad = read.map((r) => [r, securityProblems(r.headers)]).filter(([, p]) => p);
  assert(bad.length === 0, `${bad.length} of ${read.length} browser responses: ${bad.slice(0, 3).map(([r, p]) => `${r.status} ${r.url}: ${p}`).join(' | ')}`);

  // Answers the browser did not necessarily see: errors, files, other methods.
  const done = (await apiGet(TOKENS.admin, '/api/v1/exports')).data.find((j) => j.download_url);
  assert(done, 'no job with a download link');
  const link = new URL(done.download_url);
  const asked = [
    ['GET', '/'],
    ['GET', '/index.html'],
    ['GET', '/console/app.js'],
    ['GET', '/console/style.css'],
    ['GET', '/console/views/jobs.js'],
    ['GET', '/console/no-such-file.js'],
    ['GET', '/no-such-page'],
    ['GET', '/api/v1/me'],
    ['GET', '/api/v1/me', { token: 'ae_not_a_real_token' }],
    ['GET', '/api/v1/me', { token: TOKENS.admin }],
    ['GET', '/api/v1/exports', { token: TOKENS.admin }],
    ['GET', '/api/v1/exports/NO_SUCH_JOB', { token: TOKENS.admin }],
    ['GET', '/api/v1/audit-logs?from=2025-07-01&to=2025-07-02', { token: TOKENS.viewer }],
    ['GET', '/api/v1/audit-logs?from=2025-07-02&to=2025-07-01', { token: TOKENS.viewer }],
    ['POST', '/api/v1/exports/estimate', { token: TOKENS.admin, body: { filters: { from: SMALL.from, to: SMALL.to } } }],
    ['POST', '/api/v1/exports/estimate', { token: TOKENS.admin, body: '{not json' }],
    ['POST', '/api/v1/exports', { token: TOKENS.admin, body: { format: 'csv', filters: { from: SMALL.from, to: SMALL.from } } }],
    ['POST', '/api/v1/exports', { token: TOKENS.viewer, body: { format: 'csv', filters: { from: SMALL.from, to: SMALL.to } } }],
    ['DELETE', '/api/v1/me', { token: TOKENS.admin }],
    ['GET', '/api/v1/notifications', { token: TOKENS.admin }],
    ['GET', '/api/v1/schedules', { token: TOKENS.admin }],
    ['GET', '/api/v1/openapi.json'],
    ['GET', link.pathname + link.search],
    ['GET', `${link.pathname}?expires=1&sig=00`],
  ];
  const problemsFound = [];
  const statuses = [];
  for (const [method, p, opts] of asked) {
    const r = await call(method, p, opts);
    statuses.push(r.status);
    const bad1 = securityProblems(r.headers);
    if (bad1) problemsFound.push(`${method} ${p.slice(0, 60)} → ${r.status}: ${bad1}`);
  }
  assert(problemsFound.length === 0, problemsFound.slice(0, 4).join(' | '));
  // The list covers successes, client errors and a refused export.
  for (const code of [200, 400, 401, 403, 404]) assert(statuses.includes(code), `no ${code} among the answers checked (${statuses.join(', ')})`);
});

await check('console source: no HTML-parsing sink (innerHTML, insertAdjacentHTML, document.write, eval, …), no inline script, style or handler in index.html', async () => {
  const files = [];
  const walk = (dir) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else files.push(p);
    }
  };
  walk(CONSOLE_DIR);
  const sinks = /\.(innerHTML|outerHTML)\s*[+]?=|insertAdjacentHTML|document\.write|\beval\s*\(|new\s+Function\s*\(|createContextualFragment|DOMParser|setAttribute\(\s*['"]on/;
  const found = [];
  for (const f of files.filter((x) => x.endsWith('.js'))) {
    fs.readFileSync(f, 'utf8')
      .split('\n')
      .forEach((line, i) => {
        if (!line.trim().startsWith('//') && sinks.test(line)) found.push(`${path.relative(CONSOLE_DIR, f)}:${i + 1}: ${line.trim().slice(0, 80)}`);
      });
  }
  assert(found.length === 0, found.slice(0, 4).join(' | '));
  const html = fs.readFileSync(path.join(CONSOLE_DIR, 'index.html'), 'utf8');
  const inline = [
    ...[...html.matchAll(/<script\b[^>]*>/gi)].map((m) => m[0]).filter((t) => !/\ssrc=/i.test(t)),
    ...[...html.matchAll(/<style\b/gi)].map((m) => m[0]),
    ...[...html.matchAll(/\s(on[a-z]+|style)\s*=/gi)].map((m) => m[0].trim()),
    ...[...html.matchAll(/javascript:/gi)].map((m) => m[0]),
  ];
  assert(inline.length === 0, `index.html has inline code or style: ${inline.join(', ')}`);
});

await check('no CSP violation or script error under the real CSP', async () => {
  assert(problems.length === 0, problems.slice(0, 5).join(' | '));
});

await check('screenshots of each page written by this run (desktop and phone)', async () => {
  const expected = [
    'desktop-sign-in', 'desktop-audit-log', 'desktop-export-dialog', 'desktop-export-in-progress', 'desktop-export-ready',
    'desktop-duplicate-confirm', 'desktop-export-restarted', 'desktop-jobs-running', 'desktop-jobs', 'desktop-jobs-requesters',
    'desktop-schedules', 'desktop-notifications', 'desktop-viewer',
    'phone-sign-in', 'phone-audit-log', 'phone-export-dialog', 'phone-notifications', 'phone-jobs', 'phone-schedules',
  ];
  const wrong = [];
  for (const name of expected) {
    const file = path.join(ARTIFACTS, `${name}.png`);
    let st = null;
    try {
      st = fs.statSync(file);
    } catch {
      wrong.push(`${name}: missing`);
      continue;
    }
    const head = fs.readFileSync(file).subarray(0, 8).toString('hex');
    if (head !== '89504e470d0a1a0a' || st.size < 2000) wrong.push(`${name}: not a PNG screenshot`);
    else if (st.mtimeMs < RUN_STARTED - 1000) wrong.push(`${name}: left over from an earlier run`);
  }
  assert(wrong.length === 0, wrong.join(', '));
});

await browser.close();
clearTimeout(WATCHDOG);
console.log(`screenshots: ${ARTIFACTS}`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
