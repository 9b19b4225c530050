// The built-in web console in a real browser: headless Chromium opens the page the agent serves at
// https://…/#token=…, picks a pod, types into a busybox shell, resizes the window, sees exit
// statuses, reconnects, copies and pastes, and shows every refusal's Status message. Also checks the
// files' headers (CSP, no framing, no caching of the page) and that nothing outside the allowlist is
// served. Saves a screenshot of a live session to test-artifacts/console.png and docs/console.png.
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Fastify from 'fastify';
import type { BrowserContext, Locator, Page } from 'playwright-core';
import { CONSOLE_CSP, registerConsoleRoutes } from '../../src/server/console-routes.js';
import { REPO_ROOT, startAgent, type TestAgent } from '../helpers/agent.js';
import { launchBrowser, type TestBrowser } from '../helpers/browser.js';
import { podLabels, startContainer, type TestContainer } from '../helpers/containers.js';
import { useTestDocker, type TestDocker } from '../helpers/docker-daemon.js';

const ALICE_TOKEN = 'alice-console-token-0123456789abcdef';
/** alice may exec into default/web only. */
const POLICY = `
rules:
  - name: web-only
    subjects: { users: [alice] }
    modes: [exec]
    targets: [{ namespace: default, pod: web }]
`;
const WAIT_MS = 15_000;
/** A fixed "random" number, so typed commands and their output are told apart. */
const N = 4000 + Math.floor(Math.random() * 5000);

let docker: TestDocker;
let agent: TestAgent;
let policyAgent: TestAgent;
let browser: TestBrowser;
let dir: string;
const containers: TestContainer[] = [];

before(async () => {
  docker = await useTestDocker();
  dir = mkdtempSync(join(tmpdir(), 'execlet-console-'));
  writeFileSync(join(dir, 'tokens'), `${ALICE_TOKEN} alice\n`);
  writeFileSync(join(dir, 'policy.yaml'), POLICY);
  containers.push(await startContainer(docker, { labels: podLabels('default', 'web', 'app') }));
  containers.push(await startContainer(docker, { labels: podLabels('default', 'db', 'main') }));
  agent = await startAgent(docker);
  policyAgent = await startAgent(docker, { args: ['--token-file', join(dir, 'tokens'), '--policy-file', join(dir, 'policy.yaml')] });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  for (const c of containers) await c.remove();
  await agent?.stop();
  await policyAgent?.stop();
  await docker?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
// Helpers

/** What the page exposes for tests (window.__console) and the browser globals used, typed here without the DOM library. */
interface ConsoleGlobal {
  __console: {
    term: {
      cols: number;
      rows: number;
      buffer: { active: { length: number; getLine(y: number): { translateToString(trimRight: boolean): string } | undefined } };
      select(column: number, row: number, length: number): void;
    };
  };
  sessionStorage: { getItem(key: string): string | null };
  localStorage: { length: number };
  document: { cookie: string };
  navigator: { clipboard: { writeText(text: string): Promise<void>; readText(): Promise<string> } };
}

interface OpenedConsole {
  context: BrowserContext;
  page: Page;
  /** Uncaught page errors and Content-Security-Policy violations seen so far. */
  problems: string[];
}

async function openConsole(url: string, viewport = { width: 1100, height: 720 }): Promise<OpenedConsole> {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport });
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('console', (message) => {
    if (/Content[- ]Security[- ]Policy/i.test(message.text())) problems.push(`CSP: ${message.text()}`);
  });
  await page.goto(url);
  return { context, page, problems };
}

function consoleUrl(target: TestAgent, token: string): string {
  return `${target.url}/#token=${encodeURIComponent(token)}`;
}

async function poll<T>(what: string, read: () => Promise<T>, done: (value: T) => boolean, timeoutMs = WAIT_MS): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let value = await read();
  while (!done(value)) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last seen:\n${typeof value === 'string' ? value : JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
    value = await read();
  }
  return value;
}

/** Waits for a locator's text to match, and returns it. */
function waitForText(locator: Locator, pattern: RegExp, what = String(pattern)): Promise<string> {
  return poll(what, async () => ((await locator.isVisible()) ? ((await locator.textContent()) ?? '') : '(hidden)'), (text) => pattern.test(text));
}

/** The terminal's whole buffer (scrollback included), one string per line, trailing blanks cut. */
function terminalLines(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    const term = (globalThis as unknown as ConsoleGlobal).__console.term;
    const lines: string[] = [];
    for (let y = 0; y < term.buffer.active.length; y++) lines.push(term.buffer.active.getLine(y)?.translateToString(true) ?? '');
    return lines;
  });
}

function terminalSize(page: Page): Promise<{ cols: number; rows: number }> {
  return page.evaluate(() => {
    const term = (globalThis as unknown as ConsoleGlobal).__console.term;
    return { cols: term.cols, rows: term.rows };
  });
}

/** Waits until a whole line of the terminal matches, and returns that line's match. */
async function waitForLine(page: Page, pattern: RegExp): Promise<RegExpMatchArray> {
  const lines = await poll(`a terminal line matching ${pattern}`, () => terminalLines(page).then((l) => l.join('\n')), (text) => text.split('\n').some((line) => pattern.test(line.trim())));
  return lines
    .split('\n')
    .map((line) => pattern.exec(line.trim()))
    .find((match) => match !== null)!;
}

/** Types a command line into the terminal (it has the focus once a session is connected). */
async function typeLine(page: Page, line: string): Promise<void> {
  await page.keyboard.type(line);
  await page.keyboard.press('Enter');
}

/**
 * Saves the page to test-artifacts/console.png and, for the README, to docs/console.png when that
 * is missing or EXECLET_UPDATE_SCREENSHOT=1 (so a test run does not rewrite a committed file).
 */
async function saveScreenshot(page: Page): Promise<void> {
  mkdirSync(join(REPO_ROOT, 'test-artifacts'), { recursive: true });
  const screenshot = join(REPO_ROOT, 'test-artifacts', 'console.png');
  await page.screenshot({ path: screenshot });
  const docs = join(REPO_ROOT, 'docs', 'console.png');
  if (process.env.EXECLET_UPDATE_SCREENSHOT === '1' || !existsSync(docs)) {
    mkdirSync(join(REPO_ROOT, 'docs'), { recursive: true });
    copyFileSync(screenshot, docs);
  }
}

/** The row of the target picker for namespace/pod/container. */
function targetRow(page: Page, namespace: string, pod: string, container: string): Locator {
  return page
    .locator('#targets tbody tr')
    .filter({ has: page.locator('td:nth-child(1)', { hasText: new RegExp(`^${namespace}$`) }) })
    .filter({ has: page.locator('td:nth-child(2)', { hasText: new RegExp(`^${pod}$`) }) })
    .filter({ has: page.locator('td:nth-child(3)', { hasText: new RegExp(`^${container}$`) }) });
}

/** Opens a target through the form, typed rather than picked. */
async function openTyped(page: Page, target: { namespace: string; pod: string; container?: string; command?: string }): Promise<void> {
  if (!(await page.locator('#picker').evaluate((el) => (el as unknown as { open: boolean }).open))) await page.locator('#picker summary').click();
  await page.fill('input[name=namespace]', target.namespace);
  await page.fill('input[name=pod]', target.pod);
  await page.fill('input[name=container]', target.container ?? '');
  await page.selectOption('select[name=mode]', 'exec');
  await page.fill('input[name=command]', target.command ?? 'sh');
  await page.click('#open-form button[type=submit]');
}

interface Fetched {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A GET (or HEAD) without any credential, with the path sent exactly as given. */
function fetchRaw(path: string, method = 'GET'): Promise<Fetched> {
  const { port } = new URL(agent.url);
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, ca: agent.caPem }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

// ---------------------------------------------------------------------------------------------
// Tests

describe('the route module on its own', () => {
  test('enabled: the allowlisted files with their headers, a 304 for a known ETag, 404 for the rest', async () => {
    const app = Fastify();
    registerConsoleRoutes(app, { enabled: true });
    try {
      const page = await app.inject({ method: 'GET', url: '/' });
      assert.equal(page.statusCode, 200);
      assert.equal(page.headers['content-security-policy'], CONSOLE_CSP);
      assert.equal(page.headers['cache-control'], 'no-store');
      const again = await app.inject({ method: 'GET', url: '/', headers: { 'if-none-match': String(page.headers.etag) } });
      assert.equal(again.statusCode, 304);
      assert.equal(again.body, '');
      const script = await app.inject({ method: 'GET', url: '/console/vendor/xterm.mjs' });
      assert.equal(script.statusCode, 200);
      assert.match(script.body, /export\s*\{[^}]*as Terminal/);
      for (const url of ['/console/', '/console/nope.js', '/console/..%2fpackage.json', '/console/vendor/xterm.mjs.map']) {
        const reply = await app.inject({ method: 'GET', url });
        assert.equal(reply.statusCode, 404, url);
        assert.equal(JSON.parse(reply.body).reason, 'NotFound', url);
      }
    } finally {
      await app.close();
    }
  });

  test('disabled: a 404 Status at / and under /console/', async () => {
    const app = Fastify();
    registerConsoleRoutes(app, { enabled: false });
    try {
      for (const url of ['/', '/console/console.js']) {
        const reply = await app.inject({ method: 'GET', url });
        assert.equal(reply.statusCode, 404, url);
        assert.deepEqual(JSON.parse(reply.body), { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'the web console is disabled on this agent', reason: 'NotFound', code: 404 });
      }
    } finally {
      await app.close();
    }
  });
});

describe('the console files', () => {
  test('the page needs no credential and comes with a strict CSP, no framing, no caching', async () => {
    const page = await fetchRaw('/');
    assert.equal(page.status, 200, page.body);
    assert.match(String(page.headers['content-type']), /^text\/html; charset=utf-8/);
    assert.equal(page.headers['cache-control'], 'no-store');
    assert.equal(page.headers['x-frame-options'], 'DENY');
    assert.equal(page.headers['referrer-policy'], 'no-referrer');
    assert.equal(page.headers['x-content-type-options'], 'nosniff');
    const csp = String(page.headers['content-security-policy']);
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.doesNotMatch(csp, /unsafe-eval/);
    assert.match(page.body, /<script type="module" src="\/console\/console.js">/);
    const head = await fetchRaw('/', 'HEAD');
    assert.equal(head.status, 200);
  });

  test('the script, the styles and xterm.js come from the agent itself', async () => {
    for (const [path, type] of [
      ['/console/console.js', /^text\/javascript/],
      ['/console/console.css', /^text\/css/],
      ['/console/vendor/xterm.mjs', /^text\/javascript/],
      ['/console/vendor/xterm.css', /^text\/css/],
      ['/console/vendor/addon-fit.mjs', /^text\/javascript/],
    ] as const) {
      const file = await fetchRaw(path);
      assert.equal(file.status, 200, `${path}: ${file.body.slice(0, 200)}`);
      assert.match(String(file.headers['content-type']), type, path);
      assert.ok(file.body.length > 100, path);
      assert.ok(file.headers.etag, path);
    }
  });

  test('nothing outside the allowlist is served', async () => {
    for (const path of ['/console/', '/console/../package.json', '/console/%2e%2e/package.json', '/console/..%2fpackage.json', '/console/vendor/xterm.js', '/console//console.js', '/console/index.html', '/web/console.js']) {
      const reply = await fetchRaw(path);
      assert.notEqual(reply.status, 200, `${path} must not be served`);
      assert.doesNotMatch(reply.body, /"name": "execlet"|import \{/, path);
    }
  });
});

describe('the console in a browser', () => {
  test('without a token it says how to open the console', async () => {
    const { context, page, problems } = await openConsole(`${agent.url}/`);
    try {
      await waitForText(page.locator('#notice'), /needs the agent's token/);
      assert.match((await page.locator('#notice-example').textContent()) ?? '', new RegExp(`^${agent.url.replace(/[.]/g, '\\.')}/#token=TOKEN$`));
      assert.equal(await page.locator('#app').isVisible(), false);
      // The link with the token, opened in the same tab, changes only the fragment.
      await page.goto(consoleUrl(agent, agent.token));
      await targetRow(page, 'default', 'web', 'app').waitFor({ timeout: WAIT_MS });
      assert.equal(await page.locator('#notice').isVisible(), false);
      assert.deepEqual(problems, []);
    } finally {
      await context.close();
    }
  });

  test('the token moves from the address bar into session storage only', async () => {
    const { context, page, problems } = await openConsole(consoleUrl(agent, agent.token));
    try {
      await targetRow(page, 'default', 'web', 'app').waitFor({ timeout: WAIT_MS });
      assert.equal(new URL(page.url()).hash, '', 'the fragment is removed');
      assert.equal(await page.evaluate(() => (globalThis as unknown as ConsoleGlobal).sessionStorage.getItem('execlet.token')), agent.token);
      assert.equal(await page.evaluate(() => (globalThis as unknown as ConsoleGlobal).localStorage.length), 0);
      assert.equal(await page.evaluate(() => (globalThis as unknown as ConsoleGlobal).document.cookie), '');
      assert.deepEqual(await context.cookies(), []);
      await waitForText(page.locator('#whoami'), /execlet:local on node test-node/);
      // A reload keeps working from session storage.
      await page.reload();
      await targetRow(page, 'default', 'web', 'app').waitFor({ timeout: WAIT_MS });
      assert.deepEqual(problems, []);
    } finally {
      await context.close();
    }
  });

  test('a shell in a pod: output, resize, copy and paste, exit status, reconnect', async () => {
    const { context, page, problems } = await openConsole(consoleUrl(agent, agent.token));
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: agent.url });
    try {
      const row = targetRow(page, 'default', 'web', 'app');
      await row.waitFor({ timeout: WAIT_MS });
      assert.deepEqual(await row.locator('td.modes button').allTextContents(), ['exec', 'nsenter', 'toolbox']);
      await row.locator('button[data-mode=exec]').click();
      await waitForText(page.locator('#status'), /^connected: default\/web\/app \(exec\) — sh$/);
      await waitForLine(page, /^\/ #$/);

      await typeLine(page, `echo hello-${N}`);
      await waitForLine(page, new RegExp(`^hello-${N}$`));

      const before = await terminalSize(page);
      await typeLine(page, 'echo size-$(stty size)-end');
      const [, rows1, cols1] = await waitForLine(page, /^size-(\d+) (\d+)-end$/);
      assert.deepEqual({ rows: Number(rows1), cols: Number(cols1) }, before, 'the shell sees the terminal size');

      // The picker opens above the live terminal (which shrinks to fit) for the screenshot.
      await page.click('#picker summary');
      await poll('the terminal to make room for the picker', () => terminalSize(page), (size) => size.rows < before.rows);
      await page.click('#terminal');
      await typeLine(page, 'ls /');
      await waitForLine(page, /\bproc\b/);
      await saveScreenshot(page);
      await page.click('#picker summary');
      await poll('the terminal to take the room back', () => terminalSize(page), (size) => size.rows === before.rows);

      await page.setViewportSize({ width: 820, height: 560 });
      const after = await poll('the terminal to fit the smaller window', () => terminalSize(page), (size) => size.cols < before.cols && size.rows < before.rows);
      // The resize reaches the shell through the engine's API, the typed line straight through its
      // stdin: asked again (a while) until the shell has the new size.
      let seen: { rows: number; cols: number } | null = null;
      for (let attempt = 1; attempt <= 20 && !(seen?.rows === after.rows && seen.cols === after.cols); attempt++) {
        await typeLine(page, `echo size2-${attempt}-$(stty size)-end`);
        const [, rows2, cols2] = await waitForLine(page, new RegExp(`^size2-${attempt}-(\\d+) (\\d+)-end$`));
        seen = { rows: Number(rows2), cols: Number(cols2) };
      }
      assert.deepEqual(seen, after, 'the resize reached the shell');

      // Paste: the browser's own paste (Ctrl+Shift+V), which xterm takes as input.
      await page.evaluate((text) => (globalThis as unknown as ConsoleGlobal).navigator.clipboard.writeText(text), `echo pasted-${N}`);
      await page.keyboard.press('Control+Shift+V');
      await page.keyboard.press('Enter');
      await waitForLine(page, new RegExp(`^pasted-${N}$`));

      // Copy: a selection, then Ctrl+Shift+C.
      const lines = await terminalLines(page);
      const y = lines.findIndex((line) => line.trim() === `hello-${N}`);
      await page.evaluate((row) => (globalThis as unknown as ConsoleGlobal).__console.term.select(0, row, 10), y);
      await page.keyboard.press('Control+Shift+C');
      const copied = await poll('the clipboard', () => page.evaluate(() => (globalThis as unknown as ConsoleGlobal).navigator.clipboard.readText()), (text) => text === `hello-${N}`);
      assert.equal(copied, `hello-${N}`);

      await typeLine(page, 'exit 3');
      await waitForText(page.locator('#status'), /^default\/web\/app \(exec\): exited with code 3$/);
      assert.equal(await page.locator('#reconnect').isVisible(), true);

      // A stream URL works once: Reconnect asks for a new session.
      await page.click('#reconnect');
      await waitForText(page.locator('#status'), /^connected: default\/web\/app \(exec\)/);
      await waitForLine(page, /^\/ #$/);
      await typeLine(page, `echo again-${N}`);
      await waitForLine(page, new RegExp(`^again-${N}$`));
      await typeLine(page, 'exit');
      await waitForText(page.locator('#status'), /exited with code 0$/);
      assert.deepEqual(problems, []);
    } finally {
      await context.close();
    }
  });

  test('a second open while the first waits for its URL gives one session, not two sharing the keyboard', async () => {
    const { context, page, problems } = await openConsole(consoleUrl(agent, agent.token));
    try {
      await targetRow(page, 'default', 'web', 'app').waitFor({ timeout: WAIT_MS });
      if (!(await page.locator('#picker').evaluate((el) => (el as unknown as { open: boolean }).open))) await page.locator('#picker summary').click();
      await page.fill('input[name=namespace]', 'default');
      await page.fill('input[name=pod]', 'web');
      await page.fill('input[name=container]', 'app');
      await page.selectOption('select[name=mode]', 'exec');
      await page.fill('input[name=command]', 'sh');
      // Submitted twice in a row (Enter pressed twice, a second target picked): the second comes
      // while the first still waits for its stream URL.
      await page.locator('#open-form').evaluate((form) => {
        const submit = form as unknown as { requestSubmit(): void };
        submit.requestSubmit();
        submit.requestSubmit();
      });
      await waitForText(page.locator('#status'), /^connected: default\/web\/app \(exec\) — sh$/);
      await waitForLine(page, /^\/ #$/);
      await typeLine(page, `echo once-${N}`);
      await waitForLine(page, new RegExp(`^once-${N}$`));
      // A second line, answered after the first by every shell that got it.
      await typeLine(page, `echo then-${N}`);
      await waitForLine(page, new RegExp(`^then-${N}$`));
      const lines = await terminalLines(page);
      assert.equal(lines.filter((line) => line.trim() === `once-${N}`).length, 1, lines.join('\n'));
      await typeLine(page, 'exit');
      await waitForText(page.locator('#status'), /exited with code 0$/);
      assert.deepEqual(problems, []);
    } finally {
      await context.close();
    }
  });

  test('a command typed in the form, with its arguments', async () => {
    const { context, page, problems } = await openConsole(consoleUrl(agent, agent.token));
    try {
      await targetRow(page, 'default', 'web', 'app').waitFor({ timeout: WAIT_MS });
      await openTyped(page, { namespace: 'default', pod: 'web', command: `sh -c 'echo "typed $0-${N}"; exit 7' arg` });
      await waitForText(page.locator('#status'), /^default\/web \(exec\): exited with code 7$/);
      await waitForLine(page, new RegExp(`^typed arg-${N}$`));
      assert.deepEqual(problems, []);
    } finally {
      await context.close();
    }
  });

  test('an unknown pod: the 404 Status message is shown', async () => {
    const { context, page, problems } = await openConsole(consoleUrl(agent, agent.token));
    try {
      await targetRow(page, 'default', 'web', 'app').waitFor({ timeout: WAIT_MS });
      await openTyped(page, { namespace: 'default', pod: `nope-${N}` });
      await waitForText(page.locator('#error'), new RegExp(`could not open default/nope-${N} \\(exec\\): pods "nope-${N}" not found in namespace "default" \\(404 NotFound\\)`));
      await waitForText(page.locator('#status'), /refused/);
      assert.deepEqual(problems, []);
    } finally {
      await context.close();
    }
  });

  test('a stream that cannot be opened is reported, and Reconnect recovers', async () => {
    const { context, page, problems } = await openConsole(consoleUrl(agent, agent.token));
    try {
      // The agent's answer is kept, but its single-use URL is swapped for one it never issued.
      let spoiled = false;
      await page.route('**/v1/sessions', async (route) => {
        const response = await route.fetch();
        const body = (await response.json()) as { url: string };
        if (!spoiled) body.url = body.url.replace(/[^/]+$/, 'A'.repeat(43));
        spoiled = true;
        await route.fulfill({ response, json: body });
      });
      const row = targetRow(page, 'default', 'web', 'app');
      await row.waitFor({ timeout: WAIT_MS });
      await row.locator('button[data-mode=exec]').click();
      await waitForText(page.locator('#error'), /the stream could not be opened/);
      await page.click('#reconnect');
      await waitForText(page.locator('#status'), /^connected: default\/web\/app/);
      assert.equal(await page.locator('#error').isVisible(), false);
      await waitForLine(page, /^\/ #$/);
      await typeLine(page, 'exit 0');
      await waitForText(page.locator('#status'), /exited with code 0$/);
      assert.deepEqual(problems, []);
    } finally {
      await context.close();
    }
  });

  test('with a policy: only what is granted is listed, and a denied pod shows the 403 message', async () => {
    const { context, page, problems } = await openConsole(consoleUrl(policyAgent, ALICE_TOKEN));
    try {
      await targetRow(page, 'default', 'web', 'app').waitFor({ timeout: WAIT_MS });
      await waitForText(page.locator('#whoami'), /^alice on node test-node$/);
      assert.equal(await page.locator('#targets tbody tr').count(), 1, 'db/main and the node are not offered');
      await openTyped(page, { namespace: 'default', pod: 'db' });
      await waitForText(page.locator('#error'), /user "alice" may not exec into default\/db\/main \(403 Forbidden\)/);
      assert.deepEqual(problems, []);
    } finally {
      await context.close();
    }
  });

  test('a token the agent does not accept: the page says so and forgets it', async () => {
    const { context, page, problems } = await openConsole(consoleUrl(policyAgent, 'not-a-token-of-anyone-at-all'));
    try {
      await waitForText(page.locator('#notice'), /did not accept this token/);
      assert.equal(await page.evaluate(() => (globalThis as unknown as ConsoleGlobal).sessionStorage.getItem('execlet.token')), null);
      assert.deepEqual(problems, []);
    } finally {
      await context.close();
    }
  });
});
