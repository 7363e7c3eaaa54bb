// End-to-end tests of the GP Shared Record Viewer in Debian's headless
// Chromium, driven by playwright-core, checked with axe-core. Run by
// run.sh (`make test-viewer`). VIEWER_FIXTURE names the server's fixture.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);
const axeSource = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const fx = JSON.parse(fs.readFileSync(process.env.VIEWER_FIXTURE, 'utf8'));
const base = fx.url.replace(/\/$/, '');
const artifacts = path.join(path.dirname(new URL(import.meta.url).pathname), 'artifacts');
fs.mkdirSync(artifacts, { recursive: true });

const VIEWS = ['summary', 'problems', 'diagnoses', 'medication', 'allergies', 'risks', 'procedures',
  'investigations', 'examination', 'immunisations', 'events'];

let browser, context, page;
let shot = 0;
const problems = []; // CSP violations and script errors, from every page

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  context = await browser.newContext({ viewport: { width: 1366, height: 768 }, locale: 'en-GB' });
  page = await context.newPage();
  page.setDefaultTimeout(20000);
  page.on('console', (m) => {
    if (m.type() === 'error' && !/Failed to load resource: the server responded with a status of (4|5)\d\d/.test(m.text())) {
      problems.push(`console: ${m.text()}`);
    }
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
});

after(async () => {
  await browser?.close();
});

// check: screenshot, no canary (free text, data not shared), no serious
// accessibility violation, no CSP or script error so far.
async function check(name, { axe = true } = {}) {
  shot++;
  await page.screenshot({ path: path.join(artifacts, `${String(shot).padStart(2, '0')}-${name}.png`), fullPage: false });
  const html = await page.content();
  for (const c of fx.canaries) {
    assert.ok(!html.includes(c), `${name}: page shows ${c}`);
  }
  if (axe) {
    await page.evaluate(axeSource); // evaluated by the debugger protocol: the page's CSP stays on
    const res = await page.evaluate(() => globalThis.axe.run(document, {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice'] },
    }));
    const bad = res.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
    assert.deepEqual(bad.map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(' ')).slice(0, 3).join(', ')}`), [], `${name}: axe-core`);
  }
  assert.deepEqual(problems, [], `${name}: browser errors`);
}

async function signIn(username, password) {
  await page.goto(`${base}/signin`);
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

async function find(nhs) {
  await page.goto(`${base}/find`);
  await page.getByLabel('NHS number').fill(nhs);
  await page.getByRole('button', { name: 'Find patient' }).click();
}

async function consent() {
  await page.getByLabel('The patient has agreed to me viewing their GP record now').check();
  await page.getByLabel(/I confirm that I asked the patient/).check();
  await page.getByRole('button', { name: 'View GP record' }).click();
  await page.waitForURL(`${base}/record/summary`);
}

const text = (sel) => page.locator(sel).innerText();

test('sign-in page, keyboard first', async () => {
  await page.goto(`${base}/`);
  await page.waitForURL(`${base}/signin`);
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'Skip to main content');
  await check('signin');
});

test('wrong passwords are refused, then rate-limited', async () => {
  for (let i = 0; i < 5; i++) {
    await signIn('locum.e2e', 'not the password at all');
    assert.match(await text('[data-testid=message-error]'), /We could not sign you in/);
  }
  await signIn('locum.e2e', 'not the password at all');
  assert.match(await text('[data-testid=message-error]'), /Too many failed sign-in attempts/);
  await check('rate-limited');
});

test('sign in', async () => {
  const u = fx.users.clinician;
  await signIn(u.username, u.password);
  await page.waitForURL(`${base}/find`);
  await check('find');
});

test('an invalid NHS number is explained as typed and by the server', async () => {
  await page.goto(`${base}/find`);
  await page.getByLabel('NHS number').fill('943 476 59x');
  assert.match(await text('[data-testid=nhs-error]'), /only digits/);
  await find(fx.patients.invalid);
  assert.match(await text('[data-testid=nhs-error]'), /not a valid NHS number/);
  assert.equal(await page.getByLabel('NHS number').getAttribute('aria-invalid'), 'true');
  await check('invalid-nhs');
  // without the script, the server says the same
  await page.evaluate(() => { const f = document.querySelector('[data-nhs-form]'); f.querySelector('#nhs').value = '123'; f.submit(); });
  await page.waitForLoadState();
  assert.match(await text('[data-testid=nhs-error]'), /You entered 3/);
});

test("another organisation's patient and an unknown number read the same", async () => {
  await find(fx.patients.otherOrg);
  const other = await text('[data-testid=message-error]');
  await check('other-org');
  await find(fx.patients.unknown);
  const unknown = await text('[data-testid=message-error]');
  assert.match(other, /No record available/);
  assert.equal(other, unknown);
});

test('a dissenting patient is refused with a clear message', async () => {
  await find(fx.patients.dissent);
  assert.match(await text('[data-testid=message-error]'), /asked not to share their GP record/);
  await check('dissent');
});

test('a forged CSRF token is refused', async () => {
  await page.goto(`${base}/find`);
  await page.getByLabel('NHS number').fill(fx.patients.full);
  await page.evaluate(() => { document.querySelector('[data-nhs-form] input[name=csrf]').value = 'forged-token'; });
  await page.getByRole('button', { name: 'Find patient' }).click();
  assert.match(await text('[data-testid=message-error]'), /could not be verified/);
  await check('csrf-refused');
});

test('find, record consent, open every view', async () => {
  await find(fx.patients.full);
  await page.waitForURL(`${base}/patient`);
  assert.ok(await page.getByLabel('Emergency access without consent (break-glass)').isVisible(), 'break-glass offered where allowed');
  await check('patient');
  await consent();
  assert.match(await text('[data-testid=access]'), /Viewing with the patient's consent/);
  for (const v of VIEWS) {
    const t0 = Date.now();
    await page.locator(`nav.views a[data-view=${v}]`).click();
    await page.waitForURL(`${base}/record/${v}`);
    const ms = Date.now() - t0;
    assert.equal(await page.locator('[data-testid=not-shared]').count(), 0, `${v} is shared in full`);
    await check(`full-${v}`);
    console.log(`# view ${v}: ${ms} ms`);
  }
});

test('the blood pressure chart and its table', async () => {
  await page.goto(`${base}/record/examination`);
  const chart = page.locator('[data-testid=bp-chart] svg');
  assert.ok(await chart.isVisible());
  assert.ok(await chart.locator('circle').count() > 2, 'systolic points');
  assert.ok(await chart.locator('rect').count() > 2, 'diastolic points');
  const box = await chart.boundingBox();
  assert.ok(box.width > 300 && box.height > 100, 'chart drawn at a usable size');
  assert.ok(await page.locator('table.grid tbody tr').count() > 0, 'readings table');
  await chart.scrollIntoViewIfNeeded();
  await check('bp-chart', { axe: false });
});

test('codes on demand, out-of-range results marked', async () => {
  await page.goto(`${base}/record/investigations`);
  const details = page.locator('details.codes').first();
  await details.locator('summary').focus();
  await page.keyboard.press('Enter');
  assert.ok(await details.locator('code').first().isVisible(), 'codes open with the keyboard');
  assert.ok(await page.locator('[data-testid=out-of-range]').count() > 0, 'out-of-range results flagged');
  assert.match(await page.locator('table.results th').allInnerTexts().then((t) => t.join('|')), /Reference range/);
});

test('print summary marked with who viewed it and when', async () => {
  await page.locator('[data-testid=print-link]').click();
  await page.waitForURL(`${base}/print`);
  assert.match(await text('[data-testid=print-stamp]'), /Viewed by .+ on \d\d-[A-Z][a-z]{2}-\d{4} \d\d:\d\d/);
  await page.emulateMedia({ media: 'print' });
  assert.equal(await page.locator('nav.views').count(), 0);
  assert.ok(!(await page.locator('[data-print]').isVisible()), 'print button hidden in print');
  await check('print');
  await page.emulateMedia({ media: 'screen' });
});

test('break-glass refused where the agreement does not allow it', async () => {
  await find(fx.patients.limited);
  await page.waitForURL(`${base}/patient`);
  assert.equal(await page.locator('input[value=breakglass]').count(), 0, 'not offered');
  assert.match(await text('[data-testid=no-breakglass]'), /not available/);
  await check('limited-patient');
  // a forged break-glass form is refused by the server
  await page.evaluate(() => {
    const f = document.querySelector('[data-consent-form]');
    f.querySelector('#basis-patient').value = 'breakglass';
    const r = document.createElement('input');
    r.type = 'hidden'; r.name = 'reason'; r.value = 'The patient is unconscious or cannot communicate';
    f.appendChild(r);
    f.submit();
  });
  await page.waitForLoadState();
  assert.match(await text('[data-testid=message-error]'), /Emergency access is not available/);
  await check('breakglass-refused');
});

test('areas the agreement does not cover read "not shared"', async () => {
  await find(fx.patients.limited);
  await consent();
  for (const v of VIEWS) {
    await page.goto(`${base}/record/${v}`);
    const ns = await page.locator('main [data-testid=not-shared]').count();
    if (fx.notShared.includes(v)) {
      assert.ok(ns > 0, `${v}: not marked not shared`);
      assert.equal(await page.locator('main table').count(), 0, `${v}: shows data`);
      assert.match(await page.locator('nav.views a[data-view=' + v + ']').innerText(), /not shared|summary only/);
    } else {
      assert.equal(await page.locator('main .notshared-panel').count(), 0, `${v}: shared but marked not shared`);
    }
    await check(`limited-${v}`);
  }
});

test('an expired session sends the clinician to sign in again', async () => {
  const cookies = await context.cookies();
  const session = cookies.find((c) => /gpgate-viewer$/.test(c.name));
  assert.ok(session, 'session cookie');
  assert.ok(session.httpOnly && session.sameSite === 'Strict', 'session cookie attributes');
  // a session the server no longer holds (expired, or from before a restart)
  await context.addCookies([{ ...session, value: 'x'.repeat(43) }]);
  await page.goto(`${base}/record/summary`);
  await page.waitForURL(/\/signin\?m=expired$/);
  assert.match(await text('[data-testid=message-warning]'), /Your session has ended/);
  await check('expired');
});

test('sign out', async () => {
  const u = fx.users.clinician;
  await signIn(u.username, u.password);
  await page.waitForURL(`${base}/find`);
  await page.locator('[data-testid=signout]').click();
  await page.waitForURL(/\/signin\?m=signedout$/);
  assert.match(await text('[role=status]'), /You have signed out/);
  await page.goto(`${base}/record/summary`);
  await page.waitForURL(/\/signin/);
  await check('signed-out');
});
