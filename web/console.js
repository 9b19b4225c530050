// The execlet web console (a plain ES module, no framework): reads the token from the URL fragment
// into session storage, lists what the caller may reach (GET /v1/targets), asks for a single-use
// stream URL (POST /v1/sessions) and runs the Kubernetes exec protocol (v5.channel.k8s.io) over it
// in an xterm.js terminal: keystrokes on channel 0, output from 1 and 2, the final Status on 3,
// terminal size on 4.
import { Terminal } from './vendor/xterm.mjs';
import { FitAddon } from './vendor/addon-fit.mjs';

const TOKEN_KEY = 'execlet.token';
const SUBPROTOCOL = 'v5.channel.k8s.io';
const CHANNEL = { stdin: 0, stdout: 1, stderr: 2, error: 3, resize: 4 };
const NODE_MODE = 'node';

/** A light palette readable on white (xterm's default one is made for dark backgrounds). */
const LIGHT_THEME = {
  background: '#ffffff',
  foreground: '#1f2328',
  cursor: '#1f2328',
  cursorAccent: '#ffffff',
  selectionBackground: '#add6ff',
  black: '#24292f',
  red: '#cf222e',
  green: '#116329',
  yellow: '#7d4e00',
  blue: '#0969da',
  magenta: '#8250df',
  cyan: '#1b7c83',
  white: '#6e7781',
  brightBlack: '#57606a',
  brightRed: '#a40e26',
  brightGreen: '#1a7f37',
  brightYellow: '#633c01',
  brightBlue: '#218bff',
  brightMagenta: '#a475f9',
  brightCyan: '#3192aa',
  brightWhite: '#8c959f',
};

const encoder = new TextEncoder();
const decoder = new TextDecoder();

const $ = (id) => {
  const element = document.getElementById(id);
  if (!element) throw new Error(`the page has no #${id}`);
  return element;
};

/** What the page is doing: the token, the terminal, and the live session (at most one). */
const state = {
  token: '',
  /** @type {Terminal | null} */
  term: null,
  /** @type {FitAddon | null} */
  fit: null,
  /** @type {Session | null} */
  session: null,
  /** The last request that was opened, for Reconnect. */
  lastRequest: null,
  /** Counts openSession() calls: a reply to one that a later call overtook is dropped. */
  opening: 0,
};

// ---------------------------------------------------------------------------------------------
// The token: only ever from the URL fragment, kept in this tab's session storage.

/** The `token` entry of `#token=…` (not URLSearchParams: it would turn a `+` into a space). */
function tokenFromFragment(hash) {
  for (const part of hash.replace(/^#/, '').split('&')) {
    if (!part.startsWith('token=')) continue;
    try {
      return decodeURIComponent(part.slice('token='.length));
    } catch {
      return part.slice('token='.length);
    }
  }
  return null;
}

/** Moves a token from the address bar into session storage, and returns the token to use. */
function takeToken() {
  const fromUrl = tokenFromFragment(location.hash);
  if (fromUrl !== null) {
    if (fromUrl) sessionStorage.setItem(TOKEN_KEY, fromUrl);
    history.replaceState(history.state, '', location.pathname + location.search);
  }
  return sessionStorage.getItem(TOKEN_KEY) ?? '';
}

function showNotice(title, text) {
  $('notice-title').textContent = title;
  if (text) $('notice-text').textContent = text;
  $('notice-example').textContent = `${location.origin}/#token=TOKEN`;
  $('notice').hidden = false;
  $('app').hidden = true;
}

function forgetToken(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = '';
  showNotice('The agent did not accept this token', `${message} Open the console again with the link the agent prints when it starts (npm start or execlet serve):`);
}

// ---------------------------------------------------------------------------------------------
// The agent's API.

/** Calls the agent with the token; resolves with the HTTP code and the parsed JSON body (or text). */
async function api(method, path, body) {
  const headers = { authorization: `Bearer ${state.token}`, accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'omit',
    cache: 'no-store',
  });
  const text = await response.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    // Not JSON: shown as text below.
  }
  return { code: response.status, statusText: response.statusText, json, text };
}

/** "pods "x" not found (404 NotFound)": the refusal's Status message, with its code and reason. */
function refusalText(reply) {
  const status = reply.json && typeof reply.json === 'object' ? reply.json : {};
  const message = typeof status.message === 'string' && status.message ? status.message : reply.text.trim() || 'no details';
  const reason = typeof status.reason === 'string' ? status.reason : reply.statusText;
  return `${message} (${reply.code}${reason ? ` ${reason}` : ''})`;
}

// ---------------------------------------------------------------------------------------------
// Status line and error box.

function setStatus(text, kind = '') {
  const status = $('status');
  status.textContent = text;
  status.className = kind;
}

function showError(text) {
  const box = $('error');
  box.textContent = text;
  box.hidden = false;
}

function hideError() {
  $('error').hidden = true;
}

// ---------------------------------------------------------------------------------------------
// The target picker.

/** "default/web/app (exec)" or "node shell on NODE". */
function describeRequest(request) {
  if (request.mode === NODE_MODE) return `node shell${request.pod ? ` on ${request.pod}` : ''}`;
  const container = request.container ? `/${request.container}` : '';
  return `${request.namespace}/${request.pod}${container} (${request.mode})`;
}

function modeButton(target, mode) {
  const button = document.createElement('button');
  button.type = 'button';
  button.textContent = mode;
  button.title = `open ${mode === NODE_MODE ? 'a node shell' : `${mode} in ${target.namespace}/${target.pod}/${target.container}`}`;
  button.dataset.mode = mode;
  button.addEventListener('click', (event) => {
    event.stopPropagation();
    fillForm({ namespace: target.namespace, pod: target.pod, container: target.container, mode });
    void openSession(readForm());
  });
  return button;
}

function cell(text, className) {
  const td = document.createElement('td');
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function targetRow(target) {
  const row = document.createElement('tr');
  row.append(cell(target.namespace), cell(target.pod), cell(target.container), cell(target.image ?? '', 'image'), cell(target.state ?? '', `state ${target.state ?? ''}`));
  const actions = document.createElement('td');
  actions.className = 'modes';
  for (const mode of target.modes) actions.append(modeButton(target, mode));
  row.append(actions);
  row.addEventListener('click', () => fillForm({ namespace: target.namespace, pod: target.pod, container: target.container, mode: target.modes[0] ?? 'exec' }));
  return row;
}

function renderTargets(listing) {
  const body = $('targets').querySelector('tbody');
  body.replaceChildren(...listing.targets.map(targetRow));
  const count = listing.targets.length;
  $('targets-info').textContent = count === 0 ? 'nothing on this node that you may open (type a target below to see why)' : `${count} container${count === 1 ? '' : 's'} you may open`;
  $('whoami').textContent = `${listing.user} on node ${listing.node}`;
}

async function loadTargets() {
  $('targets-info').textContent = 'loading targets…';
  let reply;
  try {
    reply = await api('GET', '/v1/targets');
  } catch (err) {
    $('targets-info').textContent = '';
    showError(`could not reach the agent: ${err instanceof Error ? err.message : String(err)}`);
    return;
  }
  if (reply.code === 401) return forgetToken(refusalText(reply));
  if (reply.code !== 200 || !reply.json || !Array.isArray(reply.json.targets)) {
    $('targets-info').textContent = '';
    showError(`could not list targets: ${refusalText(reply)}`);
    return;
  }
  renderTargets(reply.json);
}

// ---------------------------------------------------------------------------------------------
// The open form.

function formField(name) {
  const field = /** @type {HTMLFormElement} */ ($('open-form')).elements.namedItem(name);
  if (!field) throw new Error(`the form has no ${name}`);
  return /** @type {HTMLInputElement | HTMLSelectElement} */ (field);
}

function fillForm(request) {
  formField('namespace').value = request.namespace;
  formField('pod').value = request.pod;
  formField('container').value = request.container ?? '';
  formField('mode').value = request.mode;
  syncModeFields();
}

/** A node shell needs no namespace, pod or container. */
function syncModeFields() {
  const node = formField('mode').value === NODE_MODE;
  for (const name of ['namespace', 'pod', 'container']) formField(name).disabled = node;
}

function readForm() {
  return {
    namespace: formField('namespace').value.trim(),
    pod: formField('pod').value.trim(),
    container: formField('container').value.trim(),
    mode: formField('mode').value,
    command: splitCommand(formField('command').value),
  };
}

/** Splits a command line into argv: whitespace separates, '…' and "…" quote, \ escapes. No shell. */
function splitCommand(line) {
  const argv = [];
  let word = null;
  let quote = '';
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote) {
      if (c === quote) quote = '';
      else if (c === '\\' && quote === '"' && i + 1 < line.length) word += line[++i];
      else word += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      word ??= '';
    } else if (c === '\\' && i + 1 < line.length) {
      word = (word ?? '') + line[++i];
    } else if (/\s/.test(c)) {
      if (word !== null) argv.push(word);
      word = null;
    } else {
      word = (word ?? '') + c;
    }
  }
  if (word !== null) argv.push(word);
  return argv.length > 0 ? argv : ['sh'];
}

/** The JSON body of POST /v1/sessions for a request and the terminal's size. */
function sessionBody(request, cols, rows) {
  const target = request.mode === NODE_MODE ? { node: true } : { namespace: request.namespace, pod: request.pod, ...(request.container ? { container: request.container } : {}) };
  return {
    target,
    command: request.command,
    tty: true,
    stdin: true,
    ...(request.mode === NODE_MODE ? {} : { mode: request.mode }),
    size: { width: cols, height: rows },
  };
}

function validate(request) {
  if (request.mode === NODE_MODE) return null;
  if (!request.namespace || !request.pod) return 'name a namespace and a pod (or pick one from the list)';
  return null;
}

// ---------------------------------------------------------------------------------------------
// The terminal.

/** Ctrl+Shift+C copies the selection; Ctrl+Shift+V is left to the browser, whose paste xterm takes. */
function clipboardKeys(term, event) {
  if (!event.ctrlKey || !event.shiftKey || event.altKey || event.metaKey) return true;
  if (event.code === 'KeyC') {
    if (event.type === 'keydown') {
      event.preventDefault();
      if (term.hasSelection()) navigator.clipboard.writeText(term.getSelection()).catch(() => showError('copying was refused by the browser: use right-click → Copy'));
    }
    return false;
  }
  return event.code !== 'KeyV';
}

function createTerminal(element) {
  const term = new Terminal({
    cursorBlink: true,
    fontFamily: '"DejaVu Sans Mono", ui-monospace, Menlo, Consolas, "Liberation Mono", monospace',
    fontSize: 14,
    scrollback: 5000,
    theme: LIGHT_THEME,
    disableStdin: true,
  });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.attachCustomKeyEventHandler((event) => clipboardKeys(term, event));
  term.open(element);
  term.onResize(({ cols, rows }) => sendResize(state.session, cols, rows));
  state.term = term;
  state.fit = fit;
  fitTerminal();
  // Follows the window and the picker opening or closing.
  let pending = false;
  new ResizeObserver(() => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      fitTerminal();
    });
  }).observe(element.parentElement ?? element);
  return term;
}

function fitTerminal() {
  try {
    state.fit?.fit();
  } catch {
    // Not laid out yet (hidden): the observer fits it once it is.
  }
}

// ---------------------------------------------------------------------------------------------
// A session: the exec protocol over the stream URL.

/**
 * @typedef {object} Session
 * @property {WebSocket} ws
 * @property {object} request
 * @property {boolean} opened
 * @property {boolean} replaced  closed by the page to open another one: report nothing
 * @property {Uint8Array[]} status  channel-3 bytes
 * @property {{ dispose(): void }[]} disposables
 */

function send(session, channel, payload) {
  if (!session || session.ws.readyState !== WebSocket.OPEN) return;
  const frame = new Uint8Array(payload.length + 1);
  frame[0] = channel;
  frame.set(payload, 1);
  session.ws.send(frame);
}

function sendResize(session, cols, rows) {
  if (session?.opened) send(session, CHANNEL.resize, encoder.encode(JSON.stringify({ Width: cols, Height: rows })));
}

/** xterm's binary data (mouse reports) is a string of bytes. */
function bytesOf(binaryString) {
  return Uint8Array.from(binaryString, (c) => c.charCodeAt(0) & 0xff);
}

function onFrame(session, frame) {
  if (session.replaced) return; // output still on its way from a session the console let go
  const channel = frame[0];
  const payload = frame.subarray(1);
  if (channel === CHANNEL.stdout || channel === CHANNEL.stderr) state.term?.write(payload);
  else if (channel === CHANNEL.error) session.status.push(payload);
}

/** The final Status of channel 3, or null when none came. */
function finalStatus(session) {
  if (session.status.length === 0) return null;
  const bytes = new Uint8Array(session.status.reduce((n, chunk) => n + chunk.length, 0));
  let offset = 0;
  for (const chunk of session.status) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  const text = decoder.decode(bytes);
  try {
    return JSON.parse(text);
  } catch {
    return { status: 'Failure', message: text };
  }
}

/** "exited with code 3", "ended: the agent is shutting down", … and whether it is a failure. */
function describeEnding(session, event) {
  const status = finalStatus(session);
  if (status?.status === 'Success') return { text: 'exited with code 0', failure: false };
  if (status?.reason === 'NonZeroExitCode') {
    const cause = status.details?.causes?.find((c) => c.reason === 'ExitCode');
    return { text: `exited with code ${cause?.message ?? '?'}`, failure: false };
  }
  if (status) return { text: `ended: ${status.message || status.reason || 'failure'}`, failure: true };
  return { text: `connection closed (WebSocket code ${event.code}${event.reason ? `: ${event.reason}` : ''}) without an exit status`, failure: true };
}

function onClosed(session, event) {
  for (const disposable of session.disposables) disposable.dispose();
  if (state.session === session) state.session = null;
  if (session.replaced) return;
  if (state.term) {
    state.term.options.disableStdin = true;
    state.term.write('\x1b[?25l'); // no cursor in a terminal that takes no input (reset() shows it again)
  }
  const where = describeRequest(session.request);
  $('reconnect').hidden = false;
  if (!session.opened) {
    setStatus(`${where}: not connected`, 'failure');
    showError(`the stream could not be opened (WebSocket code ${event.code}): the agent refused or dropped it. A stream URL works once and only for 60 s; Reconnect asks for a new one.`);
    return;
  }
  const ending = describeEnding(session, event);
  setStatus(`${where}: ${ending.text}`, ending.failure ? 'failure' : 'ended');
}

function onOpened(session) {
  session.opened = true;
  if (session.replaced) return;
  const term = state.term;
  if (!term) return;
  term.reset();
  term.options.disableStdin = false;
  sendResize(session, term.cols, term.rows);
  setStatus(`connected: ${describeRequest(session.request)} — ${session.request.command.join(' ')}`, 'live');
  term.focus();
}

/** Opens the stream URL with the exec protocol and wires it to the terminal. */
function connect(url, request) {
  const term = state.term;
  if (!term) return;
  closeSession();
  const ws = new WebSocket(url, [SUBPROTOCOL]);
  ws.binaryType = 'arraybuffer';
  /** @type {Session} */
  const session = { ws, request, opened: false, replaced: false, status: [], disposables: [] };
  state.session = session;
  session.disposables.push(
    term.onData((data) => send(session, CHANNEL.stdin, encoder.encode(data))),
    term.onBinary((data) => send(session, CHANNEL.stdin, bytesOf(data))),
  );
  ws.addEventListener('open', () => onOpened(session));
  ws.addEventListener('message', (event) => onFrame(session, new Uint8Array(event.data)));
  ws.addEventListener('close', (event) => onClosed(session, event));
}

/** Ends the live session, if any, without reporting it (its process ends with the stream). */
function closeSession() {
  const session = state.session;
  if (!session) return;
  session.replaced = true;
  state.session = null;
  for (const disposable of session.disposables) disposable.dispose();
  session.ws.close(1000, 'closed by the console');
}

/** Asks for a stream URL for the request and opens it. Every refusal is shown with its message. */
async function openSession(request) {
  const problem = validate(request);
  if (problem) return showError(problem);
  closeSession();
  hideError();
  $('reconnect').hidden = true;
  state.lastRequest = request;
  $('picked').textContent = describeRequest(request);
  /** @type {HTMLDetailsElement} */ ($('picker')).open = false;
  fitTerminal();
  const term = state.term;
  if (!term) return;
  setStatus(`starting ${describeRequest(request)}…`);
  // A second open while this one waits for its URL (a double click, another target picked) wins;
  // this one's URL then goes unused (it expires in 60 s), so only one session is ever live.
  const attempt = ++state.opening;
  let reply;
  try {
    reply = await api('POST', '/v1/sessions', sessionBody(request, term.cols, term.rows));
  } catch (err) {
    if (attempt !== state.opening) return;
    setStatus('not connected', 'failure');
    return showError(`could not reach the agent: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (attempt !== state.opening) return;
  if (reply.code === 401) {
    setStatus('not connected', 'failure');
    return forgetToken(refusalText(reply));
  }
  if (reply.code !== 201 || typeof reply.json?.url !== 'string') {
    setStatus(`${describeRequest(request)}: refused`, 'failure');
    /** @type {HTMLDetailsElement} */ ($('picker')).open = true;
    return showError(`could not open ${describeRequest(request)}: ${refusalText(reply)}`);
  }
  setStatus(`connecting to ${describeRequest(request)}…`);
  connect(reply.json.url, request);
}

// ---------------------------------------------------------------------------------------------
// Start-up.

function wireControls() {
  $('open-form').addEventListener('submit', (event) => {
    event.preventDefault();
    void openSession(readForm());
  });
  $('refresh').addEventListener('click', () => void loadTargets());
  $('reconnect').addEventListener('click', () => {
    if (state.lastRequest) void openSession(state.lastRequest);
  });
  formField('mode').addEventListener('change', syncModeFields);
  // Folding the picker away gives the keyboard back to a live terminal.
  $('picker').addEventListener('toggle', () => {
    if (!(/** @type {HTMLDetailsElement} */ ($('picker')).open) && state.session?.opened) state.term?.focus();
  });
}

function main() {
  // A link with a token opened in this tab changes only the fragment: start over with it.
  window.addEventListener('hashchange', () => {
    if (tokenFromFragment(location.hash) !== null) location.reload();
  });
  state.token = takeToken();
  if (!state.token) return showNotice("This console needs the agent's token");
  $('app').hidden = false;
  wireControls();
  createTerminal($('terminal'));
  // For tests and the curious: the terminal and the page's state.
  Object.defineProperty(window, '__console', { value: { get term() { return state.term; }, get session() { return state.session; } } });
  void loadTargets();
}

main();
