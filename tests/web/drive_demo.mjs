// Drives the browser demo in headless Chromium with playwright-core (from web_demo/node_modules).
//
//   node tests/web/drive_demo.mjs <demo-dir> <url> <screenshot.png> <title> [<title> ...]
//
// Waits for the model, picks each title (typed into the search box, then the result whose
// title matches exactly), waits for the recommendations of exactly those picks, takes a
// screenshot and prints one JSON line: {picked, recommendations: [{id, score, title, because,
// reasons}], attention, status, timing, explainMs, logs}.
import {createRequire} from 'node:module';
import path from 'node:path';

const [demoDir, url, screenshot, ...titles] = process.argv.slice(2);
const require = createRequire(path.join(path.resolve(demoDir), 'package.json'));
const {chromium} = require('playwright-core');

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const logs = [];
try {
  const page = await browser.newPage({viewport: {width: 1280, height: 820}});
  page.on('console', (message) => logs.push(`${message.type()}: ${message.text()}`));
  page.on('pageerror', (error) => logs.push(`pageerror: ${error.message}`));
  await page.goto(url);
  await page.waitForSelector('#status[data-ready="true"]', {timeout: 90_000});
  const picked = [];
  for (const title of titles) {
    await page.fill('#search', title);
    const button = page.locator('#search-results button.add').filter({hasText: title})
        .and(page.locator(`[data-title="${title.replace(/"/g, '\\"')}"]`));
    await button.first().click();
    picked.push(Number(await button.first().getAttribute('data-id')));
  }
  await page.waitForSelector(`#recommendations[data-for="${picked.join(',')}"]`, {timeout: 30_000});
  await page.fill('#search', '');
  const result = await page.evaluate(() => ({
    recommendations: [...document.querySelectorAll('#recommendations li')].map((li) => ({
      id: Number(li.dataset.id), score: Number(li.dataset.score),
      title: li.querySelector('.title').textContent,
      because: li.querySelector('.because')?.textContent ?? null,
      reasons: li.dataset.because ? JSON.parse(li.dataset.because) : null})),
    attention: [...document.querySelectorAll('#picked li')].map((li) => ({
      id: Number(li.dataset.id), attention: Number(li.dataset.attention)})),
    status: document.getElementById('status').textContent,
    timing: document.getElementById('timing').textContent,
    explainMs: document.getElementById('timing').dataset.explainMs || null,
  }));
  await page.screenshot({path: screenshot, fullPage: true});
  console.log(JSON.stringify({picked, ...result, logs}));
} catch (error) {
  console.error(`drive_demo: ${error.message}\n${logs.join('\n')}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
