// Looks at a running job's dashboard in headless Chromium (Debian's package, driven by
// playwright-core; no browser download):
//   node tests/browser/dashboard.mjs http://ADDR/ NODE,NODE,... [SCREENSHOT.png]
// Passes when the page loads, shows every named operator (in the graph and in the table),
// and the source's count advances between two looks (within 15 s). Prints `launched` once
// the browser is up (a cold start can take seconds on a loaded machine, so a caller may
// start the job only then), waits up to 30 s for the address to answer, and prints what
// it saw as one JSON line (with the latest dead letters' reasons, what the source read,
// and the plugins section's note).
import { createRequire } from 'node:module';
import assert from 'node:assert/strict';
import os from 'node:os';
import path from 'node:path';

const [url, names, shot] = process.argv.slice(2);
const tools = process.env.WEIR_BROWSER_TOOLS ?? path.join(os.homedir(), '.cache/weir/browser');
const { chromium } = createRequire(path.join(tools, 'node_modules') + '/')('playwright-core');

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
console.log('launched');
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 760 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  // The job may still be starting: ask again while nothing listens.
  for (const until = Date.now() + 30000; ; ) {
    try {
      await page.goto(url);
      break;
    } catch (e) {
      if (!String(e.message).includes('ERR_CONNECTION_REFUSED') || Date.now() > until) throw e;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  const nodes = names.split(',');
  for (const n of nodes) {
    await page.waitForSelector(`g[data-node="${n}"]`, { timeout: 10000 });
    await page.waitForSelector(`tr[data-node="${n}"]`, { timeout: 10000 });
  }
  const source = nodes[0];
  const count = async () => Number((await page.textContent(`tr[data-node="${source}"] .in`)).replace(/[^0-9]/g, '') || 0);
  await page.waitForFunction((s) => /[1-9]/.test(document.querySelector(`tr[data-node="${s}"] .in`)?.textContent ?? ''), source, { timeout: 10000 });
  const first = await count();
  // The page asks once a second; on a loaded machine an answer may come late.
  await page.waitForFunction(
    ([s, n]) => Number((document.querySelector(`tr[data-node="${s}"] .in`)?.textContent ?? '').replace(/[^0-9]/g, '') || 0) > n,
    [source, first],
    { timeout: 15000 },
  ).catch(() => {});
  const second = await count();
  assert.ok(second > first, `the count of ${source} did not advance: ${first} then ${second}`);
  // The latest dead letters with their reasons (the cases have malformed lines), and how
  // much of its file the source read.
  await page.waitForSelector('#dead-letters tbody tr', { timeout: 15000 });
  const deadRows = await page.$$eval('#dead-letters tbody tr', (rows) => rows.map((r) => r.cells[4].textContent));
  const read = await page.textContent(`tr[data-node="${source}"] .extent`);
  const plugins = await page.textContent('#plugins-note');
  const state = await page.textContent('#state');
  const job = await page.textContent('#job');
  if (shot) await page.screenshot({ path: shot, fullPage: true });
  assert.deepEqual(errors, [], 'no errors on the page');
  console.log(JSON.stringify({ job, state, source, first, second, nodes: nodes.length, deadRows, read, plugins }));
} finally {
  await browser.close();
}
