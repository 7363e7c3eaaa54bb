// End-to-end tests of the GP Shared Record Viewer in Debian's headless
// Chromium, driven by playwright-core, checked with axe-core. Run by
// run.sh (`make test-viewer`) against a real `gpgate serve`, or against the
// viewer demo server (fake core). VIEWER_FIXTURE names the fixture
// (docs/viewer.md).
//
// Every page is screenshotted and checked: no free text, no data from an
// area the user's agreement does not cover, no serious or critical axe-core
// violation, no CSP violation or script error.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';
import { freeTextOf } from './gp2gp.mjs';

const require = createRequire(import.meta.url);
const axeSource = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const fx = JSON.parse(fs.readFileSync(process.env.VIEWER_FIXTURE, 'utf8'));
const base = fx.url.replace(/\/$/, '');
const artifacts = path.join(path.dirname(new URL(import.meta.url).pathname), 'artifacts');
fs.mkdirSync(artifacts, { recursive: true });

const VIEWS = ['summary', 'problems', 'diagnoses', 'medication', 'allergies', 'risks', 'procedures',
  'investigations', 'examination', 'immunisations', 'events'];

const U = fx.users;
const P = fx.patients;

let browser, context, page;
let shot = 0;
const problems = []; // CSP violations and script errors, from every page

// What no page may show, ever: the fixture's canaries (the fake core's
// markers) and the free text of the GP2GP extracts the server reads.
const norm = (s) => s.replace(/\s+/g, ' ').trim();
let freeText = [];
// Codes no page may show while the current user is signed in: codes the
// full agreement shows only in areas this user's agreement does not cover.
let forbiddenCodes = new Set();
// The codes every view of the full record shows (clinician, full agreement).
const codesByView = {};

before(async () => {
  if (fx.gp2gp) {
    const seen = new Set();
    for (const f of fx.gp2gp.extracts) for (const t of freeTextOf(fs.readFileSync(f, 'utf8'))) seen.add(norm(t));
    freeText = [...seen];
    assert.ok(freeText.length >= 10, `only ${freeText.length} free-text strings found in the GP2GP extracts`);
    console.log(`# ${freeText.length} free-text strings from ${fx.gp2gp.extracts.length} GP2GP extracts must never show`);
  }
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  context = await browser.newContext({ viewport: { width: 1366, height: 768 }, locale: 'en-GB' });
  page = await watch(await context.newPage());
});

after(async () => {
  await browser?.close();
});

async function watch(p) {
  p.setDefaultTimeout(20000);
  p.on('console', (m) => {
    if (m.type() === 'error' && !/Failed to load resource: the server responded with a status of (4|5)\d\d/.test(m.text())) {
      problems.push(`console: ${m.text()}`);
    }
  });
  p.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  return p;
}

// check: screenshot, no canary, no free text, no forbidden code, no serious
// accessibility violation, no CSP or script error so far.
async function check(name, { axe = true, on = page } = {}) {
  shot++;
  const t = [Date.now()];
  await on.screenshot({ path: path.join(artifacts, `${String(shot).padStart(3, '0')}-${name}.jpeg`), type: 'jpeg', quality: 80, fullPage: false });
  const html = await on.content();
  for (const c of fx.canaries) {
    assert.ok(!html.includes(c), `${name}: page shows ${c}`);
  }
  // Everything a page says: its text (hidden parts too) and attribute values.
  const said = norm(await on.evaluate(() => {
    const parts = [document.documentElement.textContent];
    for (const el of document.querySelectorAll('*')) for (const a of el.attributes) parts.push(a.value);
    return parts.join('\n');
  }));
  for (const t of freeText) {
    assert.ok(!said.includes(t), `${name}: page shows free text from a GP2GP extract: ${JSON.stringify(t)}`);
  }
  t.push(Date.now());
  if (forbiddenCodes.size) {
    const shown = (await codesOn(on)).filter((c) => forbiddenCodes.has(c));
    assert.deepEqual(shown, [], `${name}: page shows codes from areas the agreement does not cover`);
  }
  if (axe) {
    await on.evaluate(axeSource); // evaluated by the debugger protocol: the page's CSP stays on
    const res = await on.evaluate(() => globalThis.axe.run(document, {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice'] },
      resultTypes: ['violations'], // passes and incomplete results are not collected in detail: much faster
    }));
    const bad = res.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
    assert.deepEqual(bad.map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(' ')).slice(0, 3).join(', ')}`), [], `${name}: axe-core`);
  }
  t.push(Date.now());
  if (process.env.E2E_TIMING) console.log(`# check ${name}: ${t[1] - t[0]} ms shot+text, ${t[2] - t[1]} ms axe`);
  assert.deepEqual(problems, [], `${name}: browser errors`);
}

const codesOn = (on = page) => on.$$eval('details.codes code', (els) => els.map((e) => e.textContent.trim()));

async function signIn(username, password) {
  await page.goto(`${base}/signin`);
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

async function signInAs(u) {
  if (await page.locator('[data-testid=signout]').count()) {
    await page.locator('[data-testid=signout]').click();
    await page.waitForURL(/\/signin\?m=signedout$/);
  }
  await signIn(u.username, u.password);
  await page.waitForURL(`${base}/find`);
}

// submitted runs fn in the page (a script's form.submit()) and waits for
// the navigation it starts to load: waitForLoadState alone answers at once
// for the page already loaded, before the new one has arrived.
async function submitted(fn) {
  const loaded = page.waitForNavigation({ waitUntil: 'load' });
  await page.evaluate(fn);
  await loaded;
}

// find submits an NHS number and returns the HTTP status of the server's
// answer (null when the page's script stopped the form).
let findStatus = null;
async function find(nhs) {
  await page.goto(`${base}/find`);
  await page.getByLabel('NHS number').fill(nhs);
  findStatus = null;
  const seen = (r) => { if (r.url() === `${base}/find` && r.request().method() === 'POST') findStatus = r.status(); };
  page.on('response', seen);
  try {
    await page.getByRole('button', { name: 'Find patient' }).click();
    await page.waitForLoadState();
  } finally {
    page.off('response', seen);
  }
  return findStatus;
}

async function consent() {
  await page.getByLabel('The patient has agreed to me viewing their GP record now').check();
  await page.getByLabel(/I confirm that I asked the patient/).check();
  await page.getByRole('button', { name: 'View GP record' }).click();
  await page.waitForURL(`${base}/record/summary`);
}

async function open(view) {
  const t0 = Date.now();
  await page.locator(`nav.views a[data-view=${view}]`).click();
  await page.waitForURL(`${base}/record/${view}`);
  return Date.now() - t0;
}

const text = (sel, on = page) => on.locator(sel).innerText();
const navLabel = (v) => page.locator(`nav.views a[data-view=${v}]`).innerText();

test('sign-in page, keyboard first', async () => {
  await page.goto(`${base}/`);
  await page.waitForURL(`${base}/signin`);
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'Skip to main content');
  await check('signin');
});

test('wrong passwords are refused, then rate-limited, for known and unknown users alike', async () => {
  const answers = {};
  for (const [who, username, right] of [['known', U.locked.username, U.locked.password], ['unknown', 'nobody.e2e', 'whatever it is now']]) {
    const seen = [];
    for (let i = 0; i < 5; i++) {
      await signIn(username, 'not the password at all');
      seen.push(await text('[data-testid=message-error]'));
    }
    assert.match(seen[0], /We could not sign you in/);
    assert.ok(seen.every((s) => s === seen[0]), `${who}: every refusal reads the same`);
    // while limited, even the right password is refused
    await signIn(username, right);
    assert.match(await text('[data-testid=message-error]'), /Too many failed sign-in attempts/);
    assert.equal(page.url(), `${base}/signin`, `${who}: not signed in`);
    answers[who] = seen[0];
  }
  assert.equal(answers.known, answers.unknown, 'a known username reads like an unknown one');
  await check('rate-limited');
});

test('sign in', async () => {
  await signIn(U.clinician.username, U.clinician.password);
  await page.waitForURL(`${base}/find`);
  await check('find');
});

test('an invalid NHS number is explained as typed and by the server', async () => {
  await page.goto(`${base}/find`);
  await page.getByLabel('NHS number').fill('943 476 59x');
  assert.match(await text('[data-testid=nhs-error]'), /only digits/);
  await find(P.invalid);
  assert.match(await text('[data-testid=nhs-error]'), /not a valid NHS number/);
  assert.equal(await page.getByLabel('NHS number').getAttribute('aria-invalid'), 'true');
  await check('invalid-nhs');
  // without the script, the server says the same
  await submitted(() => { const f = document.querySelector('[data-nhs-form]'); f.querySelector('#nhs').value = '123'; f.submit(); });
  assert.match(await text('[data-testid=nhs-error]'), /You entered 3/);
});

test("another organisation's patient and an unknown number read the same", async () => {
  const otherStatus = await find(P.otherOrg);
  const other = await text('main');
  await check('other-org');
  const unknownStatus = await find(P.unknown);
  const unknown = await text('main');
  assert.match(other, /No record available/);
  assert.equal(other.replace(P.otherOrg, 'N'), unknown.replace(P.unknown, 'N'), 'the same page');
  assert.equal(otherStatus, unknownStatus, 'the same status');
  assert.equal(otherStatus, 403);
});

test('a dissenting patient is refused with a clear message', async () => {
  await find(P.dissent);
  assert.match(await text('[data-testid=message-error]'), /asked not to share their GP record/);
  assert.equal(await page.locator('[data-testid=shared-areas]').count(), 0, 'no demographics shown');
  await check('dissent');
});

test('a forged CSRF token is refused', async () => {
  await page.goto(`${base}/find`);
  await page.getByLabel('NHS number').fill(P.full);
  await page.evaluate(() => { document.querySelector('[data-nhs-form] input[name=csrf]').value = 'forged-token'; });
  await page.getByRole('button', { name: 'Find patient' }).click();
  assert.match(await text('[data-testid=message-error]'), /could not be verified/);
  assert.equal(await page.locator('[data-testid=shared-areas]').count(), 0, 'nothing was done');
  await check('csrf-refused');
});

test('find, record consent, open every view', async () => {
  await find(P.full);
  await page.waitForURL(`${base}/patient`);
  assert.ok(await page.getByLabel('Emergency access without consent (break-glass)').isVisible(), 'break-glass offered where allowed');
  assert.doesNotMatch(await text('[data-testid=shared-areas]'), /not shared|summary only/, 'the full agreement shares every area');
  await check('patient');
  await consent();
  assert.match(await text('[data-testid=access]'), /Viewing with the patient's consent/);
  for (const v of VIEWS) {
    const ms = await open(v);
    assert.equal(await page.locator('[data-testid=not-shared]').count(), 0, `${v} is shared in full`);
    codesByView[v] = new Set(await codesOn());
    await check(`full-${v}`);
    console.log(`# view ${v}: ${ms} ms, ${codesByView[v].size} codes`);
  }
  // every page of the summary (the summary-only check relies on all of it)
  while (await page.locator('main a[rel=next]').count()) {
    await page.locator('main a[rel=next]').first().click();
    await page.waitForLoadState();
    for (const c of await codesOn()) codesByView.summary.add(c);
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

test('ending access revokes the consent: an open tab loses the record at once', async () => {
  await page.goto(`${base}/record/summary`);
  const other = await watch(await context.newPage()); // a second tab of the same session
  await other.goto(`${base}/record/problems`);
  assert.equal(await other.locator('main[data-view=problems]').count(), 1, 'second tab shows the record');
  await other.locator('[data-testid=end-access]').click();
  await other.waitForURL(`${base}/find?m=ended`);
  assert.match(await text('[role=status]', other), /Access ended/);
  await check('access-ended', { on: other });
  await other.close();
  // the first tab's next click
  await page.locator('nav.views a[data-view=medication]').click();
  await page.waitForURL(`${base}/find`);
  assert.equal(await page.locator('main[data-view]').count(), 0, 'no record shown');
});

test('break-glass where the agreement allows it, with a reason', async () => {
  await find(P.full);
  await page.waitForURL(`${base}/patient`);
  await page.getByLabel('Emergency access without consent (break-glass)').check();
  await page.getByLabel('Reason for emergency access').selectOption({ index: 1 });
  await page.getByRole('button', { name: 'View GP record' }).click();
  await page.waitForURL(`${base}/record/summary`);
  assert.match(await text('[data-testid=access]'), /Emergency \(break-glass\) access recorded/);
  await check('breakglass');
  await page.locator('[data-testid=end-access]').click();
  await page.waitForURL(`${base}/find?m=ended`);
});

test('the audit shows the viewer\'s accesses to an auditor', { skip: !fx.audit && 'the fixture names no audit (the fake core has none)' }, async () => {
  const [cmd, ...args] = fx.audit.tokenCommand;
  const token = execFileSync(cmd, args, { encoding: 'utf8' }).trim();
  const get = async (q) => {
    const r = await fetch(`${fx.fhirBase}/AuditEvent?${q}`, { headers: { Authorization: `Bearer ${token}`, Accept: 'application/fhir+json' } });
    assert.equal(r.status, 200, `GET /AuditEvent?${q}`);
    return (await r.json()).entry?.map((e) => e.resource) ?? [];
  };
  const mine = await get(`agent=${encodeURIComponent(U.clinician.sdsId)}&_count=200`);
  fs.writeFileSync(path.join(artifacts, 'audit-clinician.json'), JSON.stringify(mine, null, 2));
  const ids = (e) => e.agent.map((a) => a.who?.identifier?.value);
  const subtype = (e) => e.subtype?.[0]?.code;
  const purpose = (e) => (e.purposeOfEvent ?? []).flatMap((p) => p.coding.map((c) => c.code));
  const details = (e) => e.entity.flatMap((x) => (x.detail ?? []).map((d) => d.valueString));
  const granted = (e) => e.outcome === '0';
  for (const e of mine) {
    assert.ok(ids(e).includes('gpgate-viewer'), `${e.id} names the viewer as the client`);
    assert.ok(ids(e).includes(U.clinician.sdsId) && ids(e).includes(U.clinician.org), `${e.id} names the clinician and organisation`);
  }
  const summary = mine.map((e) => `${subtype(e)}/${e.outcome}/${e.outcomeDesc ?? ''}`).join(', ');
  assert.ok(mine.filter((e) => granted(e) && subtype(e) === 'operation').length >= VIEWS.length, `every view audited as a granted read: ${summary}`);
  assert.ok(mine.filter((e) => !granted(e) && subtype(e) === 'search-type').length >= 3, `refused finds audited (another organisation, unknown, dissent): ${summary}`);
  assert.ok(mine.some((e) => granted(e) && subtype(e) === 'create' && details(e).includes('Consent')), `a consent recorded: ${summary}`);
  const revokes = mine.filter((e) => subtype(e) === 'delete');
  assert.ok(revokes.length >= 2, `each "end access" revokes the consent: ${summary}`);
  assert.deepEqual(revokes.filter((e) => !granted(e)).map((e) => e.outcomeDesc), [], 'every revocation granted');
  const bg = mine.filter((e) => purpose(e).includes('ETREAT'));
  assert.ok(bg.some((e) => subtype(e) === 'create' && details(e).some((d) => /unconscious|capacity|emergency/i.test(d ?? ''))), 'the break-glass and its reason audited');
  assert.ok(bg.some((e) => granted(e) && subtype(e) === 'operation'), 'reads under break-glass audited as such');
  const found = await get(`agent=${encodeURIComponent(U.clinician.sdsId)}&break-glass=true`);
  assert.ok(found.length >= 2, 'break-glass accesses found by break-glass=true');
  // no other clinician's entries are this one's
  assert.equal((await get(`agent=${encodeURIComponent(U.noBreakGlass.sdsId)}`)).length, 0, 'no entries yet for the out-of-hours clinician');
});

test('break-glass refused where the agreement does not allow it', async () => {
  await signInAs(U.noBreakGlass);
  await find(P.full);
  await page.waitForURL(`${base}/patient`);
  assert.equal(await page.locator('input[value=breakglass]').count(), 0, 'not offered');
  assert.match(await text('[data-testid=no-breakglass]'), /not available/);
  await check('nobg-patient');
  // a forged break-glass form is refused by the server
  await submitted(() => {
    const f = document.querySelector('[data-consent-form]');
    f.querySelector('#basis-patient').value = 'breakglass';
    const r = document.createElement('input');
    r.type = 'hidden'; r.name = 'reason'; r.value = 'The patient is unconscious or cannot communicate';
    f.appendChild(r);
    f.submit();
  });
  assert.match(await text('[data-testid=message-error]'), /Emergency access is not available/);
  await check('breakglass-refused');
  // consent still works, and shares every area
  await consent();
  for (const v of VIEWS) {
    assert.doesNotMatch(await navLabel(v), /not shared|summary only/, `${v} shared`);
  }
});

// The limited user's organisation shares less (the real server: blood
// pressure only). Views it does not share read "not shared"; no page shows a
// code the full agreement shows only in those areas (when the limited user
// looks at the full patient, as on the real server; the fake core's data
// carries marker terms instead).
test('areas the agreement does not cover read "not shared"', async () => {
  const shared = VIEWS.filter((v) => !fx.notShared.includes(v));
  forbiddenCodes = new Set();
  if (!P.limited) {
    assert.equal(Object.keys(codesByView).length, VIEWS.length, 'the full record was seen first');
    const allowed = new Set(shared.flatMap((v) => [...codesByView[v]]));
    for (const v of fx.notShared) for (const c of codesByView[v]) if (!allowed.has(c)) forbiddenCodes.add(c);
    assert.ok(forbiddenCodes.size > 10, `only ${forbiddenCodes.size} codes to look for`);
  }
  try {
    await signInAs(U.limited);
    await find(P.limited ?? P.full);
    await page.waitForURL(`${base}/patient`);
    const areas = await text('[data-testid=shared-areas]');
    for (const v of fx.notShared) assert.match(areas, /not shared|summary only/, `${v} listed as not shared`);
    await check('limited-patient');
    await consent();
    for (const v of VIEWS) {
      await page.goto(`${base}/record/${v}`);
      const ns = await page.locator('main [data-testid=not-shared]').count();
      if (fx.notShared.includes(v)) {
        assert.ok(ns > 0, `${v}: not marked not shared`);
        assert.equal(await page.locator('main table').count(), 0, `${v}: shows data`);
        assert.match(await navLabel(v), /not shared|summary only/);
      } else {
        assert.equal(await page.locator('main .notshared-panel').count(), 0, `${v}: shared but marked not shared`);
      }
      await check(`limited-${v}`, { axe: v === 'examination' || v === fx.notShared[0] });
    }
    await page.locator('[data-testid=print-link]').click();
    await page.waitForURL(`${base}/print`);
    await check('limited-print', { axe: false });
  } finally {
    forbiddenCodes = new Set();
  }
});

test('a summary-only agreement shows the summary and nothing beyond it', { skip: !U.summaryOnly && 'the fixture has no summary-only user' }, async () => {
  assert.equal(Object.keys(codesByView).length, VIEWS.length, 'the full record was seen first');
  forbiddenCodes = new Set();
  for (const v of VIEWS) if (v !== 'summary') for (const c of codesByView[v]) if (!codesByView.summary.has(c)) forbiddenCodes.add(c);
  assert.ok(forbiddenCodes.size > 10, `only ${forbiddenCodes.size} codes to look for`);
  try {
    await signInAs(U.summaryOnly);
    await find(P.full);
    await page.waitForURL(`${base}/patient`);
    assert.match(await text('[data-testid=shared-areas]'), /summary only/);
    await consent();
    assert.equal(await page.locator('main [data-testid=not-shared]').count(), 0, 'the summary is shown');
    assert.ok(await page.locator('main table').count() > 0, 'the summary has entries');
    await check('summary-only-summary');
    for (const v of VIEWS.filter((x) => x !== 'summary')) {
      await page.goto(`${base}/record/${v}`);
      assert.ok(await page.locator('main [data-testid=not-shared]').count() > 0, `${v}: beyond the summary, but not marked`);
      assert.match(await navLabel(v), /not shared|summary only/, `${v}: nav`);
      await check(`summary-only-${v}`, { axe: v === 'problems' });
    }
  } finally {
    forbiddenCodes = new Set();
  }
});

// The GP2GP extracts' records carry free text in notes, narrative,
// comments and pharmacy text; the core removes it, and check() fails on any
// page that shows one of those strings.
test('GP2GP records: every view, no free text', { skip: !fx.gp2gp && 'SKIP: the fixture names no GP2GP practice (../shared/testdata is absent, or the fake core): the free-text check of real extracts does not run' }, async () => {
  await signInAs(U.clinician);
  let i = 0;
  let withheld = 0;
  for (const nhs of fx.gp2gp.patients) {
    const extract = fs.readFileSync(fx.gp2gp.extracts[i], 'utf8');
    i++;
    // entries marked NOPAT never leave gpgate, and the record says so
    const nopat = /confidentialityCode[^>]*code="NOPAT"/.test(extract);
    const status = await find(nhs);
    assert.equal(page.url(), `${base}/patient`, `GP2GP patient ${i}: found (status ${status})`);
    assert.match(await text('.banner'), /GP practice/, `GP2GP patient ${i}: the registered practice on the banner`);
    assert.equal((await text('[data-testid=patient-nhs]')).replace(/\s/g, ''), nhs.replace(/\s/g, ''), `GP2GP patient ${i}: the patient asked for`);
    await check(`gp2gp${i}-patient`, { axe: i === 1 });
    await consent();
    let shown = 0;
    for (const v of VIEWS) {
      await page.goto(`${base}/record/${v}`);
      assert.equal(await page.locator('main [data-testid=not-shared]').count(), 0, `${v} shared in full`);
      shown += await page.locator('main tbody tr').count();
      if (nopat) {
        assert.match(await text('main'), /Some items are withheld/, `GP2GP patient ${i} (${path.basename(fx.gp2gp.extracts[i - 1])}), ${v}: withheld entries not signalled`);
      }
      await check(`gp2gp${i}-${v}`, { axe: i === 1 }); // the same templates as the full record's
      // every further page of a long list
      for (let n = 0; n < 20 && await page.locator('main a[rel=next]').count(); n++) {
        await page.locator('main a[rel=next]').first().click();
        await page.waitForLoadState();
        await check(`gp2gp${i}-${v}-p${n + 2}`, { axe: false });
      }
    }
    if (nopat) withheld++;
    else assert.ok(shown > 0, `GP2GP patient ${i}: some coded entries shown`);
    await page.goto(`${base}/print`);
    if (nopat) assert.match(await text('main'), /Some items are withheld/, 'the printed summary signals withheld entries');
    await check(`gp2gp${i}-print`, { axe: false });
    console.log(`# GP2GP patient ${i}: ${shown} rows over ${VIEWS.length} views${nopat ? ', withheld entries signalled' : ''}`);
  }
  if (!withheld) console.log('# no GP2GP extract with NOPAT entries: the withheld signal is not checked against real data');
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
  await signIn(U.clinician.username, U.clinician.password);
  await page.waitForURL(`${base}/find`);
  await page.locator('[data-testid=signout]').click();
  await page.waitForURL(/\/signin\?m=signedout$/);
  assert.match(await text('[role=status]'), /You have signed out/);
  await page.goto(`${base}/record/summary`);
  await page.waitForURL(/\/signin/);
  await check('signed-out');
});
