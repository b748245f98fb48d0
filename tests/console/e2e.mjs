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

import { chromium } from 'playwright-core';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));

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
fs.mkdirSync(ARTIFACTS, { recursive: true });

// The whole run must stay short; a hung browser must not hang CI.
const WATCHDOG = setTimeout(() => {
  console.log('not ok - the run exceeded 240 s and was stopped');
  console.log(`${passed} passed, ${failed + 1} failed`);
  process.exit(1);
}, 240_000);

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
    details: { note: '<iframe src="javascript:window.__xssFired=1"></iframe>' },
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
  page.setDefaultTimeout(15_000);
  page.requests = [];
  page.on('request', (r) => page.requests.push({ method: r.method(), url: r.url(), at: Date.now(), body: r.postData() }));
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

async function showLog(page, { from, to, action = '' }) {
  await page.locator('#log-from').fill(from);
  await page.locator('#log-to').fill(to);
  await page.locator('#log-actions').fill(action);
  await page.locator('#filters-apply').click();
  await page.waitForFunction(() => !document.querySelector('#log-table').hasAttribute('aria-busy'));
}

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
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.addScriptTag({ path: AXE_PATH });
  const result = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(' ')).slice(0, 3) }));
  });
  const bad = result.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  assert(bad.length === 0, `${what}: ${bad.map((v) => `${v.id} (${v.impact}) at ${v.nodes.join(', ')}`).join('; ')}`);
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

await check('small export: the browser downloads a CSV whose rows match the estimate', async () => {
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
await check('large export: "Export in progress" names the e-mail and the 24 h link, completes, and its link downloads the file', async () => {
  bellBefore = await unread(page);
  await openExport(page);
  await fillExportRange(page, FIXTURE);
  await page.locator('#exp-format-jsonl').check();
  const expected = await waitEstimate(page);
  assert((await page.locator('#exp-estimate-count').getAttribute('data-mode')) === 'async', 'estimate does not say async');
  const [resp] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/api/v1/exports') && r.request().method() === 'POST'),
    page.locator('#exp-submit').click(),
  ]);
  assert(resp.status() === 202, `POST /exports answered ${resp.status()}`);
  await page.locator('#exp-in-progress').waitFor();
  assert((await page.locator('#export-title').textContent()) === 'Export in progress', 'no "Export in progress" heading');
  await shot(page, 'desktop-export-in-progress');
  const recipient = await page.locator('#exp-recipient').textContent();
  assert(recipient.includes(me.admin.email), `the panel does not name ${me.admin.email}: ${recipient}`);
  assert((await page.locator('#exp-lifetime').textContent()).includes('24 hours'), 'no 24 hours link lifetime');
  await page.locator('#exp-progress').waitFor();
  await page.locator('#exp-download').waitFor({ timeout: 30_000 });
  const prog = await page.locator('#exp-progress').evaluate((p) => [p.value, p.max]);
  assert(prog[0] === prog[1], `progress ${prog[0]}/${prog[1]} at completion`);
  await shot(page, 'desktop-export-ready');
  const [download] = await Promise.all([page.waitForEvent('download'), page.locator('#exp-download').click()]);
  const lines = fs.readFileSync(await download.path(), 'utf8').split('\n').filter(Boolean);
  assert(lines.length === expected, `${lines.length} lines, estimate said ${expected}`);
  assert(lines.every((l) => JSON.parse(l).organization_id === 'acme'), 'a line is not an acme event');
  await page.locator('#exp-return').click();
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

await check('duplicate export: confirm dialog offers a restart; confirming answers 202 with restarted: true', async () => {
  const how = await bulk;
  assert(how, 'bulk events missing');
  await showLog(page, BULK);
  const start = async () => {
    await openExport(page);
    await page.locator('#exp-profile-readable').check();
    await page.locator('#exp-submit').click();
  };
  await start();
  await page.locator('#exp-in-progress').waitFor();
  await page.locator('#exp-return').click();
  await start();
  await page.locator('#duplicate-dialog[open]').waitFor();
  assert((await page.locator('#duplicate-dialog-message').textContent()).includes('already in progress'), 'confirm text');
  await shot(page, 'desktop-duplicate-confirm');
  const [resp] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/api/v1/exports') && r.request().method() === 'POST'),
    page.locator('#duplicate-dialog-confirm').click(),
  ]);
  assert(JSON.parse(resp.request().postData()).restart === true, 'the second request does not ask restart: true');
  const body = await resp.json();
  assert(resp.status() === 202 && body.restarted === true, `answer ${resp.status()} ${JSON.stringify(body).slice(0, 120)}`);
  await page.locator('#exp-restarted').waitFor();
  await shot(page, 'desktop-export-restarted');
});

await check('jobs page: running job shows progress and updates itself; cancel works; polling stops when none runs', async () => {
  await page.locator('#exp-view-jobs').click();
  await page.locator('#jobs-table').waitFor();
  const running = page.locator('#jobs-table tr[data-state="exporting"], #jobs-table tr[data-state="uploading"]').first();
  await running.waitFor();
  const id = await running.getAttribute('data-job-id');
  assert(await running.locator('progress').isVisible(), 'no progress bar');
  await shot(page, 'desktop-jobs-running');
  await running.locator('button[data-action="cancel"]').click();
  await page.locator('#confirm-dialog-confirm').click();
  const row = page.locator(`#jobs-table tr[data-job-id="${id}"]`);
  await page.locator(`#jobs-table tr[data-job-id="${id}"][data-state="failed"]`).waitFor({ timeout: 20_000 });
  assert((await row.textContent()).toLowerCase().includes('cancel'), 'the cancelled job does not say so');
  await page.locator('#jobs-status', { hasText: 'not refreshing' }).waitFor({ timeout: 20_000 });
  const done = page.locator('#jobs-table tr[data-state="completed"]').filter({ has: page.locator('a.download-link') }).first();
  assert(await done.isVisible(), 'no completed job with a download link');
  assert((await done.locator('progress').evaluate((p) => p.value === p.max)), 'completed job progress not full');
  const mark = page.requests.length;
  await page.waitForTimeout(2500);
  const polls = page.requests.slice(mark).filter((r) => r.url.includes('/api/v1/exports'));
  assert(polls.length === 0, `still polling: ${polls.length} requests in 2.5 s`);
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
  await p.locator('#mainnav a[data-route="schedules"]').click();
  await p.waitForFunction(() => !/Loading/.test(document.querySelector('#schedules-status')?.textContent ?? 'Loading'));
  assert((await p.locator('button.run-now').count()) === 0, 'Run now shown to compliance');
  await p.context().close();
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
  await shot(p, 'desktop-viewer');
  await p.context().close();
});

// Checks below run without the CSP (bypassCSP): only the console's own
// rendering stands between event text and the DOM, and axe can be injected.
const open = await newPage({ bypassCSP: true, label: 'no-csp' });

await check('XSS: an event holding <img onerror>, <script>, <svg onload> renders as inert text', async () => {
  ingestXssEvent();
  const dialogs = [];
  open.on('dialog', (d) => {
    dialogs.push(d.message());
    d.dismiss().catch(() => {});
  });
  await signIn(open, TOKENS.admin);
  await showLog(open, { from: XSS_DAY, to: XSS_DAY });
  const row = open.locator('tr.event-row').first();
  await row.waitFor();
  await row.locator('button.expand').click();
  await open.locator('#export-open').click(); // the dialog shows the same filters
  await open.locator('#exp-cancel').click();
  await open.waitForTimeout(500);
  const fired = await open.evaluate(() => window.__xssFired);
  assert(fired === undefined, 'a payload ran (window.__xssFired set)');
  assert(dialogs.length === 0, `a dialog opened: ${dialogs.join(', ')}`);
  const injected = await open.evaluate(() => document.querySelectorAll('main img, main svg, main iframe, main script').length);
  assert(injected === 0, `${injected} elements from event text in the DOM`);
  assert((await row.locator('td').nth(3).textContent()).includes(XSS), 'the actor name is not shown literally');
  assert((await open.locator('tr.detail-row pre').first().textContent()).includes('<iframe src=\\"javascript:'), 'the JSON is not shown literally');
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
    await open.locator('#jobs-status', { hasText: 'job' }).waitFor();
  }],
  ['schedules', async () => {
    await open.locator('#mainnav a[data-route="schedules"]').click();
    await open.waitForFunction(() => !/Loading/.test(document.querySelector('#schedules-status')?.textContent ?? 'Loading'));
  }],
];
for (const [name, go] of axePages) {
  await check(`axe-core: no serious or critical violations — ${name}`, async () => {
    await go();
    await axe(open, name);
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
  }],
  ['notifications', async () => {
    await phone.locator('#exp-cancel').click();
    await phone.locator('#bell').click();
    await phone.locator('#notif-panel').waitFor();
  }],
  ['jobs', async () => {
    await phone.keyboard.press('Escape');
    await phone.locator('#mainnav a[data-route="jobs"]').click();
    await phone.locator('#jobs-status', { hasText: 'job' }).waitFor();
  }],
  ['schedules', async () => {
    await phone.locator('#mainnav a[data-route="schedules"]').click();
    await phone.waitForFunction(() => !/Loading/.test(document.querySelector('#schedules-status')?.textContent ?? 'Loading'));
  }],
];
for (const [name, go] of phonePages) {
  await check(`phone 390×844: no horizontal overflow — ${name}`, async () => {
    await go();
    await noOverflow(phone, name);
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

await check('no CSP violation or script error under the real CSP', async () => {
  assert(problems.length === 0, problems.slice(0, 5).join(' | '));
});

await browser.close();
clearTimeout(WATCHDOG);
console.log(`screenshots: ${ARTIFACTS}`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
