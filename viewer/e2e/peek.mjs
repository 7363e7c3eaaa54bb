// peek.mjs URL-of-fixture OUTDIR: screenshots of the main pages (a development aid).
import { chromium } from 'playwright-core';
import fs from 'node:fs';
const fx = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const out = process.argv[3] || 'artifacts';
fs.mkdirSync(out, { recursive: true });
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'] });
const page = await browser.newPage({ viewport: { width: 1366, height: 768 } });
page.on('console', (m) => console.log('console:', m.type(), m.text()));
await page.goto(fx.url);
await page.screenshot({ path: `${out}/signin.png` });
const u = fx.users.clinician;
await page.fill('#username', u.username); await page.fill('#password', u.password);
await page.click('button[type=submit]');
await page.fill('#nhs', process.argv[4] ? fx.patients[process.argv[4]] : fx.patients.full);
await page.click('form[data-nhs-form] button');
await page.screenshot({ path: `${out}/patient.png`, fullPage: true });
await page.check('#confirm');
await page.click('form[data-consent-form] button');
for (const v of (process.argv[5] || 'summary,examination,investigations,medication').split(',')) {
  const t0 = Date.now();
  await page.goto(fx.url + 'record/' + v);
  console.log(v, Date.now() - t0, 'ms');
  await page.screenshot({ path: `${out}/${v}.png` });
}
await browser.close();
