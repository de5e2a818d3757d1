// Measures how long the control UI takes to show a long session's
// timeline: from the click on "Timeline" to the first step shown (all
// pages of clawback.timeline fetched, the rows rendered, step 1's payload
// fetched), and a step-through click. Not a test: a benchmark helper for
// docs/BENCHMARKS.md. Prints one JSON object.
//
// env: PLAYWRIGHT_DIR, CHROMIUM, UI_URL, UI_TOKEN, UI_SESSION, UI_RUNS (default 3)
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(path.join(process.env.PLAYWRIGHT_DIR, 'x.js'));
const { chromium } = require('playwright-core');
const session = process.env.UI_SESSION;
const runs = Number(process.env.UI_RUNS || 3);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM,
  headless: true,
  args: process.getuid && process.getuid() === 0 ? ['--no-sandbox'] : [],
});
const report = { openMs: [], stepMs: [] };
try {
  const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
  page.setDefaultTimeout(60000);
  await page.goto(process.env.UI_URL, { waitUntil: 'load' });
  await page.fill('#token', process.env.UI_TOKEN);
  await page.click('#connect');
  await page.waitForSelector('#status[data-state="connected"]');
  await page.click(`#sessions li[data-key="${session}"]`);
  for (let run = 0; run < runs; run++) {
    const started = await page.evaluate(() => performance.now());
    await page.click('#timeline-open');
    await page.waitForFunction(() => {
      const detail = document.getElementById('step-detail');
      return detail.dataset.state === 'shown' && document.getElementById('step-position').textContent.startsWith('1 /');
    });
    report.openMs.push(Math.round(await page.evaluate(() => performance.now()) - started));
    report.steps = await page.$$eval('#timeline-list li', (rows) => rows.length);
    await page.evaluate(() => { document.getElementById('step-detail').dataset.state = ''; });
    const stepStarted = await page.evaluate(() => performance.now());
    await page.click('#step-next-llm');
    await page.waitForSelector('#step-detail[data-state="shown"]');
    report.stepMs.push(Math.round(await page.evaluate(() => performance.now()) - stepStarted));
  }
} catch (error) {
  report.error = String(error);
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(report) + '\n');
