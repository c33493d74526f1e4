// The web page in headless Chromium: Hello, a Talk conversation to its goodbye and a
// new one, Background to its summary with live progress, a Background cancelled
// (its server workers stop), an error shown as text, every call made in the Connect
// protocol with JSON, and no console errors.
//
// Run by run.sh, which installs Chromium and playwright-core and sets BASIC_BIN (the
// server binary) and SCREENSHOT (where to save a PNG of the page).

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isDeepStrictEqual } from 'node:util';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const BIN = process.env.BASIC_BIN;
const SCREENSHOT = process.env.SCREENSHOT;

/** Stops the test with one line on stderr, no stack trace. */
function fail(message) {
  console.error(`browser test: ${message}`);
  process.exit(1);
}

if (!BIN) fail('BASIC_BIN must name the server binary (run.sh sets it)');
if (!existsSync(BIN)) {
  fail(`basic-service binary not found at ${BIN}; build it with cargo build --bin basic-service`);
}

/** Starts the server on an ephemeral loopback port; resolves once it listens. */
function startServer(extra) {
  const child = spawn(BIN, [
    '--addr', '127.0.0.1:0', '--metrics-addr', '127.0.0.1:0', '--log-format', 'json', ...extra,
  ], { env: { ...process.env, RUST_LOG: 'info' }, stdio: ['ignore', 'pipe', 'inherit'] });
  const server = { child, log: [], addr: null, metrics: null };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGTERM');
      reject(new Error('server did not start in 30 s'));
    }, 30_000);
    // Not started at all (ENOENT, EACCES): spawn reports it here, not by throwing.
    child.on('error', (err) => { clearTimeout(timer); reject(new Error(`cannot start ${BIN}: ${err.message}`)); });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`server exited early (${code})`)); });
    createInterface({ input: child.stdout }).on('line', (line) => {
      let event;
      try { event = JSON.parse(line); } catch { return; }
      server.log.push(event);
      if (event.message?.startsWith('Prometheus metrics')) server.metrics = event.addr;
      if (event.message === 'basic.v1.BasicService listening') server.addr = event.addr;
      if (server.addr && server.metrics) { clearTimeout(timer); resolve(server); }
    });
  });
}

/**
 * A gauge or counter from the server's /metrics, by its name and labels as the exporter
 * writes them (`basic_rpc_total{method="...",protocol="...",code="..."}`); 0 if absent.
 */
async function metric(server, name) {
  const text = await (await fetch(`http://${server.metrics}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? 0 : Number(line.split(' ')[1]);
}

/** Polls `check` every 100 ms until it returns true; fails after `seconds`. */
async function eventually(what, check, seconds = 30) {
  const end = Date.now() + seconds * 1000;
  for (;;) {
    if (await check()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

let fast;
let slow;
try {
  fast = await startServer(['--sim-delay-min-ms', '100', '--sim-delay-max-ms', '2500', '--sim-seed', '7',
    '--max-processes', '100000']);
  // Simulated calls of a minute or more: any that stop soon were stopped by the cancel.
  slow = await startServer(['--sim-delay-min-ms', '60000', '--sim-delay-max-ms', '120000']);
} catch (err) {
  fast?.child.kill('SIGTERM');
  fail(err.message);
}
const userDataDir = mkdtempSync(join(tmpdir(), 'basic-chromium-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const consoleErrors = [];
let passed = 0;
let failed = 0;

async function step(name, body) {
  try {
    await body();
    passed += 1;
    console.log(`ok - ${name}`);
  } catch (err) {
    failed += 1;
    console.log(`not ok - ${name}\n  ${String(err.stack || err).split('\n').join('\n  ')}`);
  }
}

try {
  const page = context.pages()[0] || await context.newPage();
  page.setDefaultTimeout(30_000);
  page.on('console', (msg) => { if (msg.type() === 'error') consoleErrors.push(msg.text()); });
  page.on('pageerror', (err) => consoleErrors.push(String(err)));
  // The content types the page's calls were sent with, by method.
  const contentTypes = {};
  page.on('request', (req) => {
    const method = new URL(req.url()).pathname.match(/^\/basic\.v1\.BasicService\/(\w+)$/)?.[1];
    if (method) (contentTypes[method] ??= new Set()).add(req.headers()['content-type']);
  });
  const rpcTotal = (server, method, code, protocol = 'connect') => metric(server,
    `basic_rpc_total{method="/basic.v1.BasicService/${method}",protocol="${protocol}",code="${code}"}`);
  const text = (selector) => page.locator(selector).innerText();

  await step('the page loads from the server itself', async () => {
    const res = await page.goto(`http://${fast.addr}/`);
    assert.equal(res.status(), 200);
    assert.equal(await page.title(), 'basic.v1.BasicService');
  });

  await step('Hello shows the greeting and the event', async () => {
    await page.fill('#hello-name', 'Ada Lovelace');
    await page.click('#hello-send');
    await page.locator('#hello-out', { hasText: 'Hello, Ada Lovelace' }).waitFor();
    const out = await text('#hello-out');
    assert.match(out, /id: [0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}/);
    assert.match(out, /source: basic\.v1\.BasicService\/Hello/);
    assert.match(out, /type: basic\.service\.v1\.HelloResponse/);
    assert.match(out, /time: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d/);
  });

  await step('Talk keeps one conversation across messages until the goodbye', async () => {
    const say = async (line, how) => {
      const before = await page.locator('#talk-log li').count();
      await page.fill('#talk-input', line);
      if (how === 'enter') await page.press('#talk-input', 'Enter');
      else await page.click('#talk-send');
      await page.locator('#talk-log li').nth(before + 1).waitFor();
      return page.locator('#talk-log li').nth(before + 1).innerText();
    };
    // The 1966 CACM conversation: each reply depends on what came before.
    assert.equal(await say('Men are all alike.', 'enter'), 'ELIZA: In what way?');
    assert.equal(await say("They're always bugging us about something or other.", 'click'),
      'ELIZA: Can you think of a specific example?');
    assert.equal(await say('Well, my boyfriend made me come here.', 'enter'),
      'ELIZA: Your boyfriend made you come here.');
    assert.equal(await say('bye', 'enter'), 'ELIZA: Goodbye. It was nice talking to you.');
    await page.locator('#talk-status', { hasText: 'ended the conversation' }).waitFor();
    assert.equal(await page.isDisabled('#talk-input'), true);
    await page.click('#talk-new');
    assert.equal(await page.locator('#talk-log li').count(), 0);
    assert.equal(await say('Men are all alike.', 'enter'), 'ELIZA: In what way?');
  });

  await step('Background shows live progress, then the summary', async () => {
    await page.fill('#bg-processes', '12');
    await page.click('#bg-start');
    // A value strictly between 0 and max is a snapshot shown while the call runs.
    await page.waitForFunction(() => {
      const p = document.getElementById('bg-progress');
      return p.max === 12 && p.value > 0 && p.value < 12;
    });
    await page.locator('#bg-summary', { hasText: 'Total: 12 of 12' }).waitFor();
    const summary = await text('#bg-summary');
    assert.match(summary, /State: COMPLETE/);
    assert.match(summary, /Per protocol: \w+ \d+/);
    assert.match(summary, /Failures: 0/);
    assert.match(summary, /Wall time: \d+\.\d{3} s/);
    assert.equal(await page.$eval('#bg-progress', (p) => p.value), 12);
    const perProtocol = summary.match(/Per protocol: (.*)/)[1];
    const total = perProtocol.split(', ').reduce((n, part) => n + Number(part.split(' ')[1]), 0);
    assert.equal(total, 12);
  });

  await step('Background at 100 000 workers keeps its progress bar moving', async () => {
    // Record every value the bar shows, sampled in the page itself.
    await page.evaluate(() => {
      window.bgSeen = [];
      window.bgTimer = setInterval(() => {
        const v = document.getElementById('bg-progress').value;
        if (window.bgSeen[window.bgSeen.length - 1] !== v) window.bgSeen.push(v);
      }, 20);
    });
    const started = Date.now();
    await page.fill('#bg-processes', '100000');
    await page.click('#bg-start');
    // Every snapshot lists every result so far: in JSON about 250 MB in all, which a
    // debug build writes in 20 to 30 s.
    await page.locator('#bg-summary', { hasText: 'Total: 100000 of 100000' }).waitFor({ timeout: 120_000 });
    const seen = await page.evaluate(() => { clearInterval(window.bgTimer); return window.bgSeen; });
    console.log(`# 100 000 workers: summary after ${Date.now() - started} ms; bar values ${seen.join(' ')}`);
    // Paced snapshots (about five a second while results come in) each moved the bar.
    const between = seen.filter((v) => v > 0 && v < 100000);
    assert.ok(between.length >= 3, `the bar moved only through ${between.join(', ')}`);
  });

  await step('an error is shown as text', async () => {
    await page.fill('#bg-processes', '200000');
    await page.click('#bg-start');
    await page.locator('#bg-status', { hasText: 'INVALID_ARGUMENT' }).waitFor();
    assert.match(await text('#bg-status'), /maximum is 100000/);
  });

  await step('the page calls the server with Connect and JSON', async () => {
    assert.deepEqual(Object.fromEntries(Object.entries(contentTypes).map(([m, types]) => [m, [...types]])), {
      Hello: ['application/json'],
      Talk: ['application/connect+json'],
      Background: ['application/connect+json'],
    });
    // The server counted them as Connect calls, with the codes the page showed (a call
    // is counted as it ends, which may be a moment after the page has its reply).
    const counts = async () => ({
      'Hello OK': await rpcTotal(fast, 'Hello', 'OK'),
      'Talk OK': await rpcTotal(fast, 'Talk', 'OK'),
      'Background OK': await rpcTotal(fast, 'Background', 'OK'),
      'Background INVALID_ARGUMENT': await rpcTotal(fast, 'Background', 'INVALID_ARGUMENT'),
    });
    const expected = { 'Hello OK': 1, 'Talk OK': 5, 'Background OK': 2, 'Background INVALID_ARGUMENT': 1 };
    await eventually('the calls counted', async () => isDeepStrictEqual(await counts(), expected), 5)
      .catch(() => {});
    assert.deepEqual(await counts(), expected);
    const metrics = await (await fetch(`http://${fast.metrics}/metrics`)).text();
    assert.doesNotMatch(metrics, /^basic_rpc_total\{[^}]*protocol="grpc-web"/m);
  });

  if (SCREENSHOT) {
    await page.fill('#bg-processes', '12');
    await page.click('#bg-start');
    await page.locator('#bg-summary', { hasText: 'Total: 12 of 12' }).waitFor();
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    console.log(`# screenshot: ${SCREENSHOT}`);
  }

  await step('Cancel ends the call and the server stops its workers', async () => {
    await page.goto(`http://${slow.addr}/`);
    await page.fill('#bg-processes', '40');
    await page.click('#bg-start');
    await eventually('40 workers running', async () => (await metric(slow, 'basic_background_workers_active')) === 40);
    assert.equal(await page.isEnabled('#bg-cancel'), true);
    await page.click('#bg-cancel');
    await page.locator('#bg-status', { hasText: 'Cancelled.' }).waitFor();
    // The calls take a minute or more: workers gone now were stopped by the cancel.
    await eventually('the workers to stop', async () => (await metric(slow, 'basic_background_workers_active')) === 0);
    await eventually('the access log line', async () => slow.log.some((e) => e.method === '/basic.v1.BasicService/Background' && e.code === 'CANCELLED'));
    assert.equal(await rpcTotal(slow, 'Background', 'CANCELLED'), 1);
    assert.equal(await page.isEnabled('#bg-start'), true);
  });

  await step('no console errors', async () => {
    assert.deepEqual(consoleErrors, []);
  });
} finally {
  await context.close();
  rmSync(userDataDir, { recursive: true, force: true });
  fast.child.kill('SIGTERM');
  slow.child.kill('SIGTERM');
}

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
