// Drives the control UI in headless Chromium (Debian's, through npm
// playwright-core) as a person would, and prints what it saw as one JSON
// object on stdout; the Rust test (tests/integration/control_ui.rs)
// asserts on it. Nothing here decides pass or fail beyond "the page never
// got there" (a timeout, reported as {"error": ...} with a screenshot).
//
// env: PLAYWRIGHT_DIR (node_modules holding playwright-core), CHROMIUM,
//      UI_URL (the gateway's http://host:port/), UI_TOKEN, UI_MESSAGE,
//      UI_SCREENSHOT (a .png path to write)
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(path.join(process.env.PLAYWRIGHT_DIR, 'x.js'));
const { chromium } = require('playwright-core');

const STEP_TIMEOUT_MS = 30000;
const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const url = env('UI_URL');
const token = env('UI_TOKEN');
const message = env('UI_MESSAGE');
const screenshot = env('UI_SCREENSHOT');

const report = { consoleErrors: [], steps: [] };
const browser = await chromium.launch({
  executablePath: env('CHROMIUM'),
  headless: true,
  // Root in a container has no user namespace for Chromium's sandbox.
  args: process.getuid && process.getuid() === 0 ? ['--no-sandbox'] : [],
  timeout: STEP_TIMEOUT_MS,
});
const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
page.setDefaultTimeout(STEP_TIMEOUT_MS);
page.on('console', (entry) => {
  if (entry.type() === 'error') report.consoleErrors.push(entry.text());
});
page.on('pageerror', (error) => report.consoleErrors.push(String(error)));
// Every request the page makes: nothing may leave the gateway's origin.
const origin = new URL(url).origin;
report.foreignRequests = [];
page.on('request', (req) => {
  const target = new URL(req.url());
  const same = target.origin === origin || target.host === new URL(url).host;
  if (!same && !req.url().startsWith('data:')) report.foreignRequests.push(req.url());
});

try {
  const started = Date.now();
  const response = await page.goto(url, { waitUntil: 'load' });
  report.loadWallMs = Date.now() - started;
  report.status = response.status();
  report.headers = response.headers();
  report.timing = await page.evaluate(() => {
    const nav = performance.getEntriesByType('navigation')[0];
    return { domContentLoadedMs: nav.domContentLoadedEventEnd, loadMs: nav.loadEventEnd };
  });

  await page.fill('#token', token);
  await page.click('#connect');
  await page.waitForSelector('#status[data-state="connected"]');
  report.statusText = await page.textContent('#status');
  report.tokenInUrl = page.url().includes(token);
  report.tokenInStorage = await page.evaluate(
    (t) => sessionStorage.getItem('clawback.gatewayToken') === t, token);
  report.steps.push('connected');

  // Watch the assistant bubble: every text it shows on the way to the end.
  await page.evaluate(() => {
    window.__bubbleTexts = [];
    new MutationObserver(() => {
      const bubble = document.querySelector('#chat-log .msg.assistant:last-child');
      if (!bubble) return;
      const seen = window.__bubbleTexts;
      const text = bubble.textContent;
      if (text && seen[seen.length - 1] !== text) seen.push(text);
    }).observe(document.getElementById('chat-log'), { subtree: true, childList: true, characterData: true });
  });
  await page.fill('#chat-input', message);
  await page.click('#chat-send');
  await page.waitForSelector('#chat-log .msg.assistant[data-state="final"]');
  report.reply = await page.textContent('#chat-log .msg.assistant[data-state="final"]');
  report.bubbleTexts = await page.evaluate(() => window.__bubbleTexts);
  report.chatEvents = await page.$$eval('#events li[data-event="chat"]',
    (rows) => rows.map((row) => row.dataset.state));
  report.steps.push('chatted');

  await page.waitForSelector('#sessions li[data-key="agent:main:main"]');
  report.sessions = await page.$$eval('#sessions li[data-key]', (rows) => rows.map((r) => r.dataset.key));

  await page.click('#timeline-open');
  await page.waitForSelector('#timeline-list li');
  await page.waitForSelector('#step-detail[data-state="shown"]');
  report.timelineKinds = await page.$$eval('#timeline-list li', (rows) => rows.map((r) => r.dataset.kind));
  report.positions = [await page.textContent('#step-position')];
  for (let i = 0; i < 2; i++) {
    await page.click('#step-next');
    await page.waitForSelector('#step-detail[data-state="shown"]');
    report.positions.push(await page.textContent('#step-position'));
  }
  await page.click('#step-prev');
  await page.waitForSelector('#step-detail[data-state="shown"]');
  report.positions.push(await page.textContent('#step-position'));
  await page.click('#step-next-llm');
  await page.waitForSelector('#step-detail[data-state="shown"]');
  await page.waitForSelector('#llm-view:not([hidden])');
  report.llmStepSummary = await page.textContent('#step-summary');
  report.llmRequest = JSON.parse(await page.textContent('#llm-request'));
  report.llmResponse = JSON.parse(await page.textContent('#llm-response'));
  report.steps.push('stepped');

  // The gateway signs a checkpoint every few records here; refresh until
  // the page has compared one with the log it checked (bounded).
  for (let i = 0; i < 40; i++) {
    const text = await page.textContent('#audit-checkpoint');
    if (text.includes('root matches the log') || text.includes('NOT')) break;
    await page.click('#audit-refresh');
    await page.waitForTimeout(250);
  }
  await page.waitForSelector('#audit-chain.good');
  report.auditChain = await page.textContent('#audit-chain');
  report.auditCheckpoint = await page.textContent('#audit-checkpoint');
  report.steps.push('audited');

  // The screenshot shows the run; then a reload: the cached assets and
  // the token kept in sessionStorage reconnect without asking again.
  await page.screenshot({ path: screenshot, fullPage: true });
  const reloaded = Date.now();
  await page.reload({ waitUntil: 'load' });
  report.reloadWallMs = Date.now() - reloaded;
  report.reloadTiming = await page.evaluate(() => {
    const nav = performance.getEntriesByType('navigation')[0];
    return { domContentLoadedMs: nav.domContentLoadedEventEnd, loadMs: nav.loadEventEnd };
  });
  await page.waitForSelector('#status[data-state="connected"]');
  report.reconnectedFromStorage = true;
} catch (error) {
  report.error = String(error && error.stack || error);
  // An error's screenshot shows where the page stopped.
  await page.screenshot({ path: screenshot, fullPage: true }).catch((shot) => {
    report.screenshotError = String(shot);
  });
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(report) + '\n');
