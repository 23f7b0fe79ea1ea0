// Browser check of the one-time sign-in link (tests/tests/e2e/ui_link.rs):
// Debian's chromium, driven by playwright-core, opens the link that
// `shiftkey-ca ui link` printed, lands signed in on the sessions page, and
// is refused when it opens the same link again.
//
// Input: SHIFTKEY_UI_TEST (JSON): base, url, screenshots.
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
  const expected = (r) => r.status() === 410 && r.url().startsWith(`${base}/ui/link`);
  page.on('response', (r) => {
    if (r.status() >= 400 && !expected(r)) problems.push(`HTTP ${r.status()} for ${r.url()}`);
  });
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e}`));

  const first = await page.goto(cfg.url);
  check(first.status() === 200, `the link answers 200, got ${first.status()}`);
  await page.waitForURL(`${base}/ui/`);
  await page.getByRole('heading', { name: 'Sessions', level: 1 }).waitFor();
  const who = await page.locator('form.who').innerText();
  check(who.includes(cfg.identity), `the header names ${cfg.identity}: ${who}`);
  const cookies = await context.cookies(`${base}/ui/`);
  const session = cookies.find((c) => c.name === '__Secure-shiftkey-ui');
  check(session && session.httpOnly && session.secure && session.sameSite === 'Strict', `a Strict session cookie: ${JSON.stringify(cookies)}`);
  await shot(page, 'link-signed-in');
  report.signed_in = true;

  const again = await page.goto(cfg.url);
  check(again.status() === 410, `the link used again answers 410, got ${again.status()}`);
  await page.getByRole('heading', { name: 'This sign-in link was used already' }).waitFor();
  await shot(page, 'link-used');
  report.second_use = again.status();

  check(problems.length === 0, `no console errors or CSP violations: ${problems.join('\n')}`);
  report.ok = true;
  console.log(JSON.stringify(report));
} catch (err) {
  console.error(String(err?.stack ?? err));
  console.error(`report so far: ${JSON.stringify(report)}`);
  console.error(`console: ${problems.join('\n')}`);
  if (page) {
    await shot(page, 'link-failure').catch(() => {});
    console.error(`at ${page.url()}: ${(await page.locator('main').innerText().catch(() => '')).slice(0, 300)}`);
  }
  process.exitCode = 1;
} finally {
  await browser.close();
}
