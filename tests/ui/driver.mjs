// Browser driver for the review UI's end-to-end test (tests/tests/e2e/ui.rs).
// Debian's chromium, driven by playwright-core; never downloads a browser.
//
// Input: SHIFTKEY_UI_TEST (JSON): base, idp, needle, session, serial,
// incident, request, requester_token, override, screenshots.
// Output: one JSON line on stdout with what it saw; exit 1 on a failed check.
import { chromium } from 'playwright-core';
import { join } from 'node:path';

const cfg = JSON.parse(process.env.SHIFTKEY_UI_TEST ?? '{}');
const base = cfg.base.replace(/\/$/, '');
const report = {};
const problems = [];

function check(ok, message) {
  if (!ok) throw new Error(`check failed: ${message}`);
}

async function login(who) {
  const response = await fetch(`${cfg.idp}/__test/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(who),
  });
  check(response.ok, `setting the provider's login: ${response.status}`);
}

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
const shot = (page, name) => page.screenshot({ path: join(cfg.screenshots, `${name}.png`), fullPage: true });

let page;
try {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1366, height: 900 } });
  page = await context.newPage();
  page.setDefaultTimeout(15000);
  // The anonymous first visit (401) and mallory's refusal (403) are
  // expected; anything else failing to load is a problem.
  const expected = (r) =>
    (r.status() === 401 && r.url() === `${base}/ui/`) ||
    (r.status() === 401 && r.url() === `${base}/ui/sessions`) ||
    (r.status() === 403 && r.url().startsWith(`${base}/ui/callback`));
  page.on('response', (r) => {
    if (r.status() >= 400 && !expected(r)) problems.push(`HTTP ${r.status()} for ${r.url()}`);
  });
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e}`));

  // Signing in: the sign-in page, then the provider, then back.
  await login({ sub: 'rita', email: 'rita@example.com', email_verified: true, groups: ['sre-leads'] });
  const first = await page.goto(`${base}/ui/`);
  check(first.status() === 401, `an anonymous /ui/ answers 401 with the sign-in page, got ${first.status()}`);
  await shot(page, 'signin');
  await page.getByRole('link', { name: /sign in/i }).click();
  await page.waitForURL(`${base}/ui/`);
  await page.getByRole('heading', { name: 'Sessions', level: 1 }).waitFor();
  const cookies = await context.cookies(`${base}/ui/`);
  const session = cookies.find((c) => c.name === '__Secure-shiftkey-ui');
  check(session, `a session cookie: ${JSON.stringify(cookies)}`);
  report.cookie = { httpOnly: session.httpOnly, secure: session.secure, sameSite: session.sameSite, path: session.path };

  // Find the session by what was typed, and open it at that moment.
  await page.getByLabel('Text typed or run').fill(cfg.needle);
  await page.getByRole('button', { name: 'Search' }).click();
  const match = page.locator('a.match', { hasText: `echo ${cfg.needle}` }).first();
  await match.waitFor();
  await shot(page, 'sessions');
  await match.click();
  await page.waitForURL(new RegExp(`/ui/sessions/${cfg.session}\\?`));
  // The input events beside the player.
  const input = page.locator('#input-list button', { hasText: `echo ${cfg.needle}` });
  await input.waitFor();
  check((await page.locator('#input-list li').count()) >= 2, 'the input list has the typed lines');
  // Play from the typed line: the output shows up in the terminal.
  await page.locator('#player .ap-player').waitFor();
  await input.click();
  await page.waitForFunction(
    (needle) => (document.querySelector('#player')?.innerText ?? '').split(needle).length > 2,
    cfg.needle,
    { timeout: 15000 },
  );
  const position = await page.evaluate(() => window.shiftkeyPlayer.getCurrentTime());
  check(position > 0, `the player moved (${position})`);
  await page.getByLabel('Speed').selectOption('2');
  await page.locator('#player .ap-player').waitFor();
  await shot(page, 'session');
  report.played_at = position;
  // The signed bundle.
  const bundle = await page.request.get(`${base}/ui/sessions/${cfg.session}/export`);
  check(bundle.status() === 200, `export answers ${bundle.status()}`);
  const tar = (await bundle.body()).toString('latin1');
  check(tar.includes(`${cfg.session}/metadata.json`) && tar.includes('BEGIN SSH SIGNATURE'), 'the bundle holds the signed manifest');

  // The incident: its certificates and its sessions.
  await page.goto(`${base}/ui/incidents/${cfg.incident}`);
  const incidentText = await page.locator('main').innerText();
  check(incidentText.includes(cfg.session), 'the incident page lists the session');
  check(incidentText.includes(String(cfg.serial)), 'the incident page lists the certificate');
  await shot(page, 'incident');

  // The audit log: verified chain, filters, JSON lines.
  await page.goto(`${base}/ui/audit`);
  await page.locator('.chain.ok').waitFor();
  await page.getByLabel('Kind (or prefix)').fill('recording');
  await page.getByLabel('Actor').fill('user:rita@example.com');
  await page.getByRole('button', { name: 'Apply' }).click();
  await page.locator('table.audit td', { hasText: 'recording.viewed' }).first().waitFor();
  await shot(page, 'audit');
  const lines = await page.request.get(`${base}/ui/audit/export?kind=recording`);
  const rows = (await lines.text()).trim().split('\n').map((l) => JSON.parse(l));
  check(rows.length > 0 && rows.every((r) => r.kind.startsWith('recording') && r.hash.length === 64), 'JSON-lines export');

  // Approvals: CSRF first (refused attempts change nothing), then approve.
  await page.goto(`${base}/ui/approvals`);
  const article = page.locator('article.request', { hasText: cfg.request });
  await article.waitFor();
  const articleText = await article.innerText();
  check(articleText.includes('deploy hotfix 1.2.3'), "the requester's reason is shown");
  check(/on call: primary/.test(articleText), "the requester's on-call status is shown");
  const token = await article.locator('input[name="csrf"]').inputValue();
  const deny = `${base}/ui/approvals/${cfg.request}/deny`;
  const attempts = [
    { form: { reason: 'no token' }, headers: { Origin: base } },
    { form: { reason: 'wrong token', csrf: 'x'.repeat(token.length) }, headers: { Origin: base } },
    { form: { reason: 'other site', csrf: token }, headers: { Origin: 'https://evil.example' } },
  ];
  report.csrf = [];
  for (const a of attempts) {
    const r = await page.request.post(deny, { ...a, maxRedirects: 0 });
    report.csrf.push(r.status());
  }
  await page.reload();
  await article.waitFor();
  await shot(page, 'approvals');
  await article.getByLabel(/Reason for your decision/).fill('matches the change ticket');
  await article.getByRole('button', { name: 'Approve' }).click();
  await page.waitForURL(`${base}/ui/approvals`);
  const row = page.locator(`tr[data-request="${cfg.request}"]`);
  await row.waitFor();
  check((await row.innerText()).includes('approved'), 'the request shows approved');
  // The requester looks again and gets the certificate.
  const asked = await fetch(`${base}/v1/requests/${cfg.request}`, {
    headers: { authorization: `Bearer ${cfg.requester_token}` },
  });
  const answer = await asked.json();
  check(asked.status === 200 && answer.status === 'issued' && answer.certificate, `issued: ${JSON.stringify(answer)}`);
  report.issued = { status: answer.status, serial: answer.certificate.serial };
  await page.reload();
  await row.waitFor();
  const issuedText = await row.innerText();
  check(issuedText.includes('issued') && issuedText.includes(`serial ${answer.certificate.serial}`), `the request shows issued: ${issuedText}`);
  await shot(page, 'approvals-issued');

  // On call: shorten the override through its form, then delete it.
  await page.getByRole('link', { name: 'On call' }).click();
  const ov = page.locator('article.request', { hasText: cfg.override });
  await ov.waitFor();
  check((await ov.innerText()).includes('bob covers the afternoon'), "the override's reason is shown");
  await ov.getByLabel(/End it in/).fill('150');
  await ov.locator('form[action$="/shorten"]').getByLabel('Reason').fill('bob is back early');
  await ov.getByRole('button', { name: 'Shorten' }).click();
  await page.waitForURL(`${base}/ui/oncall`);
  await ov.waitFor();
  await shot(page, 'oncall');
  await ov.locator('form[action$="/delete"]').getByLabel('Reason').fill('not needed after all');
  await ov.getByRole('button', { name: 'Delete' }).click();
  await page.waitForURL(`${base}/ui/oncall`);
  await page.getByText('No override is in force or to come.').waitFor();
  report.oncall = 'shortened and deleted';

  // Sign out, then someone without reviewer or approver rights.
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('heading', { name: 'Signed out' }).waitFor();
  await login({ sub: 'mallory', email: 'mallory@example.com', email_verified: true, groups: [] });
  const callback = page.waitForResponse((r) => r.url().startsWith(`${base}/ui/callback`));
  await page.getByRole('link', { name: /sign in again/i }).click();
  const refused = await callback;
  check(refused.status() === 403, `mallory's callback answers 403, got ${refused.status()}`);
  await page.getByRole('heading', { name: 'You may not use the review UI' }).waitFor();
  await shot(page, 'forbidden');
  const after = await page.goto(`${base}/ui/sessions`);
  check(after.status() === 401, 'no session was made for mallory');

  check(problems.length === 0, `no console errors or CSP violations: ${problems.join('\n')}`);
  report.ok = true;
  console.log(JSON.stringify(report));
} catch (err) {
  console.error(String(err?.stack ?? err));
  console.error(`report so far: ${JSON.stringify(report)}`);
  console.error(`console: ${problems.join('\n')}`);
  if (page) {
    await shot(page, 'failure').catch(() => {});
    console.error(`at ${page.url()}: ${(await page.locator('main').innerText().catch(() => '')).slice(0, 300)}`);
    console.error(`player: ${(await page.locator('#player').innerHTML().catch(() => '')).slice(0, 3000)}`);
  }
  process.exitCode = 1;
} finally {
  await browser.close();
}
