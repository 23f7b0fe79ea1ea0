// Browser checks that the review UI answers at a glance
// (tests/tests/e2e/ui_glance.rs): the live session page follows the
// session and settles when it ends, without a reload; the sessions list,
// the session page, the approvals page (a denial without a reason) and the
// audit detail; one timestamp format everywhere.
//
// Input: SHIFTKEY_UI_TEST (JSON): base, idp, parts (of `live`,
// `approvals`, `oncall`), session, reason, deny, other, override,
// screenshots.
// Output: JSON lines on stdout: {"stage": "live-ready"} when the live page
// is followed (the test then types more), {"stage": "live-followed"} when
// the page showed it (the test then ends the session), and the report
// last ({"ok": true, ...}); exit 1 on a failed check.
import { chromium } from 'playwright-core';
import { join } from 'node:path';

const cfg = JSON.parse(process.env.SHIFTKEY_UI_TEST ?? '{}');
const base = cfg.base.replace(/\/$/, '');
const report = {};
const problems = [];

function check(ok, message) {
  if (!ok) throw new Error(`check failed: ${message}`);
}

const say = (line) => console.log(JSON.stringify(line));

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
  ],
});
const shot = (page, name) => page.screenshot({ path: join(cfg.screenshots, `${cfg.prefix ?? 'glance'}-${name}.png`), fullPage: true });

// One timestamp format: every moment in `main` is a <time> reading
// `YYYY-MM-DD HH:MM:SS UTC` with the relative time on hover and beside it,
// and no other spelling of a moment is left in the text.
async function oneTimestampFormat(page, where) {
  const seen = await page.evaluate(() => {
    const main = document.querySelector('main');
    const times = [...main.querySelectorAll('time')].map((t) => ({
      text: t.textContent,
      title: t.getAttribute('title'),
      datetime: t.getAttribute('datetime'),
      ago: t.nextElementSibling?.classList.contains('ago') ? t.nextElementSibling.textContent : null,
    }));
    return { times, text: main.innerText };
  });
  check(seen.times.length > 0, `${where}: moments are shown as <time>`);
  for (const t of seen.times) {
    check(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/.test(t.text), `${where}: "${t.text}" reads YYYY-MM-DD HH:MM:SS UTC`);
    check(t.title && /ago|in |just now/.test(t.title), `${where}: "${t.text}" has its relative time on hover (${t.title})`);
    check(t.ago && /^\((.+ ago|in .+|just now)\)$/.test(t.ago), `${where}: "${t.text}" has its relative time beside it (${t.ago})`);
    check(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/.test(t.datetime), `${where}: machine-readable datetime ${t.datetime}`);
  }
  const other = seen.text.match(/\d{4}-\d\d-\d\d(T\d\d:\d\d(:\d\d)?(\.\d+)?(Z|[+-]\d\d:\d\d)?|\s\d\d:\d\d:\d\dZ)/);
  check(!other, `${where}: no other timestamp spelling (${other?.[0]})`);
  return seen.times.length;
}

let page;
try {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1366, height: 900 } });
  page = await context.newPage();
  page.setDefaultTimeout(20000);
  // The anonymous first visit (401) and the refused denials (422) are
  // expected; anything else failing to load is a problem.
  const expected = (r) =>
    (r.status() === 401 && r.url() === `${base}/ui/`) ||
    (r.status() === 422 && r.url().endsWith(`/ui/approvals/${cfg.deny}/deny`)) ||
    (r.status() === 422 && r.url().endsWith(`/ui/oncall/${cfg.override}/delete`));
  page.on('response', (r) => {
    if (r.status() >= 400 && !expected(r)) problems.push(`HTTP ${r.status()} for ${r.url()}`);
  });
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e}`));

  const login = await fetch(`${cfg.idp}/__test/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ sub: 'rita', email: 'rita@example.com', email_verified: true, groups: ['sre-leads'] }),
  });
  check(login.ok, `setting the provider's login: ${login.status}`);
  await page.goto(`${base}/ui/`);
  await page.getByRole('link', { name: /sign in/i }).click();
  await page.waitForURL(`${base}/ui/`);

  const parts = new Set(cfg.parts ?? []);
  if (parts.has('live')) await live();
  if (parts.has('approvals')) await approvals();
  if (parts.has('oncall')) await oncall();

  check(problems.length === 0, `no console errors or CSP violations: ${problems.join('\n')}`);
  report.ok = true;
  report.stage = 'done';
  say(report);
} catch (err) {
  console.error(String(err?.stack ?? err));
  console.error(`report so far: ${JSON.stringify(report)}`);
  console.error(`console: ${problems.join('\n')}`);
  if (page) {
    await shot(page, 'failure').catch(() => {});
    console.error(`at ${page.url()}: ${(await page.locator('main').innerText().catch(() => '')).slice(0, 1500)}`);
  }
  say({ ok: false, stage: 'failed', error: String(err?.message ?? err) });
  process.exitCode = 1;
} finally {
  await browser.close();
}

// The live session page follows the session and settles when it ends;
// then the session page, the sessions list, the audit detail, and the one
// timestamp format on each.
async function live() {
  let navigations = 0;
  page.on('framenavigated', (f) => {
    if (f === page.mainFrame()) navigations += 1;
  });
  await page.goto(`${base}/ui/sessions/${cfg.session}`);
  navigations = 0;
  await page.evaluate(() => {
    window.glanceMarker = 'still this page';
  });
  const text = (selector) => page.locator(selector).innerText();
  check((await text('#session-status')).trim() === 'live', `the page opens live: ${await text('#session-status')}`);
  await page.locator('#player[data-mode="live"] .ap-player').waitFor();
  // The stream replays what was typed so far, then keeps up.
  await page.locator('#input-list', { hasText: 'glance-first' }).waitFor();
  await page.waitForFunction(() => (document.querySelector('#player')?.innerText ?? '').includes('glance-first'));
  const eventsBefore = Number.parseInt(await text('#session-events'), 10);
  const bytesBefore = Number.parseInt(await page.locator('#session-bytes').getAttribute('data-bytes'), 10);
  check(Number.isFinite(eventsBefore) && eventsBefore > 0, `an event count (${eventsBefore})`);
  report.live = { events_before: eventsBefore, bytes_before: bytesBefore };
  say({ stage: 'live-ready' });

  // The test types a second line: the input list, the counts and the
  // player show it, on this same page.
  await page.locator('#input-list', { hasText: 'glance-second' }).waitFor({ timeout: 30000 });
  await page.waitForFunction(
    (before) => Number.parseInt(document.querySelector('#session-events')?.textContent ?? '0', 10) > before,
    eventsBefore,
    { timeout: 30000 },
  );
  await page.waitForFunction(() => (document.querySelector('#player')?.innerText ?? '').includes('glance-second'), null, {
    timeout: 30000,
  });
  report.live.events_after = Number.parseInt(await text('#session-events'), 10);
  check((await text('#session-duration')).startsWith('running'), `a running duration: ${await text('#session-duration')}`);
  await shot(page, 'live-session');
  say({ stage: 'live-followed' });

  // The test ends the session: the page settles on its own.
  await page.waitForFunction(() => document.querySelector('#session-status')?.innerText.trim() === 'sealed', null, {
    timeout: 60000,
  });
  await page.locator('#player[data-mode="recording"] .ap-player').waitFor();
  await page.locator('#session-ended time').waitFor();
  const reason = (await text('#session-end-reason')).trim();
  check(reason === 'client closed', `why it ended: ${reason}`);
  const digest = (await text('#session-digest')).trim();
  check(/^[0-9a-f]{64}$/.test(digest), `the seal's digest is shown: ${digest}`);
  check((await text('#session-exit')).trim() === '0', `the exit status: ${await text('#session-exit')}`);
  const duration = (await text('#session-duration')).trim();
  check(/^\d+ (s|min \d\d s)$/.test(duration), `a final duration: ${duration}`);
  const bytesAfter = Number.parseInt(await page.locator('#session-bytes').getAttribute('data-bytes'), 10);
  check(bytesAfter > bytesBefore, `the stored bytes grew: ${bytesBefore} → ${bytesAfter}`);
  check((await page.evaluate(() => window.glanceMarker)) === 'still this page', 'the page was not reloaded');
  check(navigations === 0, `no navigation happened (${navigations})`);
  report.live.final_status = (await text('#session-status')).trim();
  report.live.end_reason = reason;
  await shot(page, 'ended-session');

  // --- The session page, freshly loaded: why, under which incident, and
  // who approved it when.
  await page.goto(`${base}/ui/sessions/${cfg.session}`);
  check((await text('#access-reason')).trim() === cfg.reason, `the access reason: ${await text('#access-reason')}`);
  const incident = page.locator('#access-incident a[href="/ui/incidents/INC-7"]');
  check((await incident.count()) === 1, 'the incident links to its page');
  const approval = page.locator('#access-approval');
  check((await approval.innerText()).includes('user:rita@example.com'), `the approver: ${await approval.innerText()}`);
  check((await approval.locator('time').count()) === 1, 'the approval has its time');
  report.session_times = await oneTimestampFormat(page, 'session page');
  await shot(page, 'session');

  // --- The sessions list: how long, and why it ended.
  await page.goto(`${base}/ui/sessions`);
  const row = page.locator(`tr[data-session="${cfg.session}"]`);
  await row.waitFor();
  const listed = { duration: (await row.locator('td.duration').innerText()).trim(), reason: (await row.locator('td.end-reason').innerText()).trim() };
  check(/^\d+ (s|min \d\d s)$/.test(listed.duration), `the list's duration: ${listed.duration}`);
  check(listed.reason === 'client closed', `the list's end reason: ${listed.reason}`);
  const head = await page.locator('table.grid thead').last().innerText();
  check(head.includes('Duration') && head.includes('Why it ended'), `the list's columns: ${head}`);
  report.list = listed;
  report.list_times = await oneTimestampFormat(page, 'sessions list');
  await shot(page, 'sessions');

  // --- Audit detail as readable fields.
  await page.goto(`${base}/ui/audit?kind=certificate.issued`);
  const issued = page.locator('table.audit tbody tr').first();
  await issued.waitFor();
  const fields = issued.locator('dl.fields');
  check((await fields.count()) === 1, 'the detail is a definition list');
  const labels = await fields.locator('dt').allInnerTexts();
  for (const label of ['Certificate serial', 'Role', 'Principals', 'Reason', 'Incident', 'Valid until']) {
    check(labels.includes(label), `the detail has ${label}: ${labels.join(', ')}`);
  }
  check((await fields.innerText()).includes(cfg.reason), 'the detail shows the reason');
  check((await issued.locator('code.detail').count()) === 0, 'no raw JSON');
  report.audit_times = await oneTimestampFormat(page, 'audit log');
  await shot(page, 'audit-detail');

  // --- The incident page and on-call page keep the one format too.
  await page.goto(`${base}/ui/incidents/INC-7`);
  report.incident_times = await oneTimestampFormat(page, 'incident');
  await page.goto(`${base}/ui/incidents`);
  report.incidents_times = await oneTimestampFormat(page, 'incidents');
}

// Approvals: role, principals, hosts, TTL and reason at a glance; a
// denial without a reason (or with a character that hides text) shows the
// page again with the error beside that request, the other one intact.
async function approvals() {
  const text = (selector) => page.locator(selector).innerText();
  await page.goto(`${base}/ui/approvals`);
  const article = page.locator(`article.request[data-request="${cfg.deny}"]`);
  const other = page.locator(`article.request[data-request="${cfg.other}"]`);
  await article.waitFor();
  const facts = await article.locator('dl.facts').innerText();
  for (const label of ['Role', 'Principals', 'Hosts', 'Lifetime (TTL)', 'Reason']) {
    check(facts.includes(label), `the request shows ${label}: ${facts}`);
  }
  check(facts.includes('deploy') && facts.includes('app-1.prod.example.com'), `principals and hosts: ${facts}`);
  check(facts.includes('deploy hotfix 1.2.3'), `the reason: ${facts}`);
  const deny = async (reason) => {
    await article.getByLabel(/Reason for your decision/).fill(reason);
    const answer = page.waitForResponse((r) => r.url().endsWith(`/ui/approvals/${cfg.deny}/deny`));
    await article.getByRole('button', { name: 'Deny' }).click();
    const response = await answer;
    await page.waitForLoadState();
    return response.status();
  };
  const empty = await deny('');
  check(empty === 422, `a denial without a reason answers 422 with the page, got ${empty}`);
  await page.getByRole('heading', { name: 'Approvals', level: 1 }).waitFor();
  const error = article.locator('.form-error');
  await error.waitFor();
  check(/reason/i.test(await error.innerText()), `the error says a reason is needed: ${await error.innerText()}`);
  check((await article.getByLabel(/Reason for your decision/).getAttribute('aria-invalid')) === 'true', 'the field is marked');
  check((await other.count()) === 1 && (await other.locator('.form-error').count()) === 0, 'the other request is intact');
  await shot(page, 'approvals-error');
  // A reason that hides text: refused, the message names the character.
  const hidden = await deny('fine \u202edevorppa');
  check(hidden === 422, `a reason with a bidi control answers 422, got ${hidden}`);
  const named = await article.locator('.form-error').innerText();
  check(named.includes('U+202E') && named.includes('RLO'), `the message names the character: ${named}`);
  // The typed text comes back marked, not live.
  const kept = await article.getByLabel(/Reason for your decision/).inputValue();
  check(kept.includes('\u27e8RLO\u27e9'), `the typed reason is shown marked: ${JSON.stringify(kept)}`);
  report.approvals_times = await oneTimestampFormat(page, 'approvals');
  // With a reason, the denial goes through.
  await article.getByLabel(/Reason for your decision/).fill('wrong team for this change');
  await article.getByRole('button', { name: 'Deny' }).click();
  await page.waitForURL(`${base}/ui/approvals`);
  await page.locator(`tr[data-request="${cfg.deny}"]`, { hasText: 'denied' }).waitFor();
  check((await other.count()) === 1, 'the other request still waits');
  report.approvals = 'refused twice with the form, then denied';

}

// On call: a change the CA refuses shows the page again with the error
// beside that form, the override unchanged. The browser's own checks are
// switched off first, as an older browser or a script would not have them.
async function oncall() {
  await page.goto(`${base}/ui/oncall`);
  const ov = page.locator('article.request', { hasText: cfg.override });
  await ov.waitFor();
  const form = ov.locator('form[action$="/delete"]');
  await form.evaluate((f) => {
    f.noValidate = true;
  });
  const answer = page.waitForResponse((r) => r.url().endsWith(`/ui/oncall/${cfg.override}/delete`));
  await ov.getByRole('button', { name: 'Delete' }).click();
  const status = (await answer).status();
  check(status === 422, `a deletion without a reason answers 422 with the page, got ${status}`);
  await page.getByRole('heading', { name: 'On-call overrides', level: 1 }).waitFor();
  const error = ov.locator('.form-error');
  await error.waitFor();
  check(/reason/i.test(await error.innerText()), `the error asks for a reason: ${await error.innerText()}`);
  check((await ov.count()) === 1, 'the override is still there');
  report.oncall_times = await oneTimestampFormat(page, 'on call');
  await shot(page, 'oncall-error');
  report.oncall = 'refused with the form';
}
