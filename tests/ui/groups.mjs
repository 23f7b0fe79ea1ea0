// Browser check that a reviewer named only by a group signs in
// (tests/tests/e2e/ui_provider.rs): the test provider releases `groups`
// only under the `groups` scope, which the UI asks for by default.
//
// Input: SHIFTKEY_UI_TEST (JSON): base, idp, email, groups, screenshots.
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

const response = await fetch(`${cfg.idp}/__test/login`, {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ sub: cfg.email, email: cfg.email, email_verified: true, groups: cfg.groups }),
});
check(response.ok, `setting the provider's login: ${response.status}`);

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
  page.on('response', (r) => {
    if (r.status() >= 400 && !(r.status() === 401 && r.url() === `${base}/ui/`)) problems.push(`HTTP ${r.status()} for ${r.url()}`);
  });
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e}`));

  await page.goto(`${base}/ui/`);
  await page.getByRole('link', { name: /sign in/i }).click();
  await page.waitForURL(`${base}/ui/`);
  await page.getByRole('heading', { name: 'Sessions', level: 1 }).waitFor();
  const who = await page.locator('form.who').innerText();
  check(who.includes(`user:${cfg.email}`), `signed in as ${cfg.email}: ${who}`);
  check(await page.getByRole('link', { name: 'Audit log' }).isVisible(), 'a reviewer of everything sees the audit log link');
  await shot(page, 'group-reviewer');
  report.signed_in = true;
  check(problems.length === 0, `no console errors or CSP violations: ${problems.join('\n')}`);
  report.ok = true;
  console.log(JSON.stringify(report));
} catch (err) {
  console.error(String(err?.stack ?? err));
  console.error(`console: ${problems.join('\n')}`);
  if (page) {
    await shot(page, 'group-failure').catch(() => {});
    console.error(`at ${page.url()}: ${(await page.locator('main').innerText().catch(() => '')).slice(0, 600)}`);
  }
  process.exitCode = 1;
} finally {
  await browser.close();
}
