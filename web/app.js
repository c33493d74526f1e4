// The page's script: calls to this server with fetch in the Connect protocol
// (connectrpc.com/docs/protocol) and JSON, no build step and no library. Hello is a
// Connect unary call (a bare JSON message each way); Talk and Background are streams
// of enveloped JSON messages, read as they arrive. Messages follow the proto3 JSON
// mapping of idl/basic/service/v1/service.proto and idl/cloudevents/v1/cloudevents.proto:
// lowerCamelCase names, enums by name, fields with default values left out.
'use strict';

// ---- Connect ----------------------------------------------------------------

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

/** A Connect error; the message names the code as gRPC does (INVALID_ARGUMENT: ...). */
class ConnectError extends Error {
  constructor(code, message) {
    // Connect's codes are gRPC's in lower case, but `canceled` for CANCELLED.
    const name = typeof code === 'string' && code ? code.toUpperCase() : 'UNKNOWN';
    super(`${name === 'CANCELED' ? 'CANCELLED' : name}: ${message || ''}`);
    this.code = code;
  }
}

/** The error of a response that is not HTTP 200: its JSON error body, if it has one. */
async function httpError(res) {
  try {
    const error = await res.json();
    if (typeof error.code === 'string') return new ConnectError(error.code, error.message);
  } catch { /* not a Connect error body */ }
  return new Error(`HTTP ${res.status} ${res.statusText}`);
}

/** POSTs `body` to `method` of basic.v1.BasicService; throws for a non-200 reply. */
async function post(method, contentType, body, signal) {
  const res = await fetch(`/basic.v1.BasicService/${method}`, {
    method: 'POST',
    headers: { 'content-type': contentType, 'connect-protocol-version': '1' },
    body,
    signal,
  });
  if (res.status !== 200) throw await httpError(res);
  return res;
}

/** The reply of a unary call to `method` with `message`. */
async function unary(method, message) {
  return (await post(method, 'application/json', JSON.stringify(message))).json();
}

/** `messages` as one stream's body: each a flag byte (0), a 4-byte length and its JSON. */
function envelopes(messages) {
  const parts = messages.map((m) => utf8.encode(JSON.stringify(m)));
  const body = new Uint8Array(parts.reduce((n, p) => n + 5 + p.length, 0));
  const view = new DataView(body.buffer);
  let at = 0;
  for (const p of parts) {
    view.setUint32(at + 1, p.length);
    body.set(p, at + 5);
    at += 5 + p.length;
  }
  return body;
}

/**
 * Calls the streaming `method` with `messages` (one for a server stream; several for
 * Talk, sent as one client stream) and yields each reply as it arrives. Throws
 * ConnectError for an error in the end-of-stream message; `signal` cancels the call.
 */
async function* stream(method, messages, signal) {
  const res = await post(method, 'application/connect+json', envelopes(messages), signal);
  // Chunks are kept as they arrive and joined once a whole message is there, so a large
  // message costs one copy, not one per chunk.
  const reader = res.body.getReader();
  const chunks = [];
  let buffered = 0;
  const take = (n) => {
    const out = new Uint8Array(n);
    let at = 0;
    while (at < n) {
      const chunk = chunks[0];
      const used = Math.min(chunk.length, n - at);
      out.set(chunk.subarray(0, used), at);
      at += used;
      if (used === chunk.length) chunks.shift(); else chunks[0] = chunk.subarray(used);
    }
    buffered -= n;
    return out;
  };
  for (;;) {
    while (buffered >= 5) {
      const head = take(5);
      const len = new DataView(head.buffer).getUint32(1);
      if (buffered < len) { chunks.unshift(head); buffered += 5; break; }
      const flag = head[0];
      const payload = take(len);
      if (flag !== 0 && flag !== 0x02) throw new Error('protocol error: compressed message not expected');
      const message = JSON.parse(fromUtf8.decode(payload));
      if (flag === 0x02) {
        // End of stream: {} or {"error": {"code", "message", "details"}, "metadata": {...}}.
        if (message.error) throw new ConnectError(message.error.code, message.error.message);
        return;
      }
      yield message;
    }
    const { value, done } = await reader.read();
    if (done) throw new Error('protocol error: the response ended without its end-of-stream message');
    chunks.push(value);
    buffered += value.length;
  }
}

/**
 * google.protobuf.Timestamp in JSON (RFC 3339, up to nanoseconds) -> milliseconds since
 * the epoch, keeping the fraction of a millisecond; unset (absent) is the epoch.
 */
function millis(text) {
  if (text === undefined) return 0;
  const [, whole, fraction = '', zone] = /^([^.]+?)(?:\.(\d+))?([Zz]|[+-]\d\d:\d\d)$/.exec(text) || [];
  return Date.parse(`${whole}${zone}`) + Number(`0.${fraction}`) * 1000;
}

const $ = (id) => document.getElementById(id);

function show(element, lines, isError = false) {
  element.classList.toggle('error', isError);
  element.replaceChildren(...lines.map((line) => {
    const p = document.createElement('p');
    p.textContent = line;
    return p;
  }));
}

const describe = (err) => (err instanceof Error ? err.message : String(err));

// ---- Hello ------------------------------------------------------------------

$('hello-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const out = $('hello-out');
  $('hello-send').disabled = true;
  try {
    const reply = await unary('Hello', { message: $('hello-name').value });
    const event = reply.cloudEvent ?? {};
    const time = event.attributes?.time;
    show(out, [
      event.protoData?.greeting ?? '',
      `id: ${event.id ?? ''}`,
      `source: ${event.source ?? ''}`,
      `type: ${event.type ?? ''}`,
      `time: ${time ? new Date(millis(time.ceTimestamp)).toISOString() : '-'}`,
    ]);
  } catch (err) {
    show(out, [`Hello failed: ${describe(err)}`], true);
  } finally {
    $('hello-send').disabled = false;
  }
});

// ---- Talk -------------------------------------------------------------------
// A browser cannot stream a request, so each turn replays the conversation so far as
// one client stream; ELIZA is deterministic, so she answers the earlier lines as
// before and the last reply is her answer to the new line. An empty line is sent
// after it as a probe: she answers every line except after her farewell, when the
// server ends the stream, so a missing answer to the probe means she said goodbye.

const talk = { history: [], ended: false, busy: false };

function addLine(who, text) {
  const li = document.createElement('li');
  li.className = who;
  li.textContent = `${who === 'you' ? 'You' : 'ELIZA'}: ${text}`;
  $('talk-log').append(li);
  li.scrollIntoView({ block: 'nearest' });
}

function setTalkEnded(ended) {
  talk.ended = ended;
  $('talk-input').disabled = ended;
  $('talk-send').disabled = ended;
  $('talk-new').hidden = !ended;
}

$('talk-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const input = $('talk-input');
  const text = input.value.trim();
  if (!text || talk.ended || talk.busy) return;
  talk.busy = true;
  $('talk-send').disabled = true;
  addLine('you', text);
  input.value = '';
  const history = [...talk.history, text];
  try {
    const replies = [];
    const messages = [...history, ''].map((m) => ({ message: m }));
    for await (const reply of stream('Talk', messages)) replies.push(reply.answer ?? '');
    if (replies.length < history.length) throw new Error('the conversation had already ended');
    talk.history = history;
    addLine('eliza', replies[history.length - 1]);
    if (replies.length === history.length) {
      setTalkEnded(true);
      $('talk-status').textContent = 'ELIZA ended the conversation.';
    } else {
      $('talk-status').textContent = `${history.length} message(s) so far.`;
    }
  } catch (err) {
    $('talk-status').textContent = `Talk failed: ${describe(err)}`;
    $('talk-status').classList.add('error');
  } finally {
    talk.busy = false;
    if (!talk.ended) $('talk-send').disabled = false;
    input.focus();
  }
});

$('talk-new').addEventListener('click', () => {
  talk.history = [];
  $('talk-log').replaceChildren();
  $('talk-status').classList.remove('error');
  $('talk-status').textContent = 'New conversation. Say something; say goodbye to end it.';
  setTalkEnded(false);
  $('talk-input').focus();
});

// ---- Background -------------------------------------------------------------

let bgCall = null;

/** The summary of a final BackgroundResponseEvent. */
function summary(event, requested) {
  const responses = event.responses ?? [];
  const perProtocol = new Map();
  let failures = 0;
  // A call's data: {"value": its protocol, "type": "protocol"}, or {"value": the error,
  // "type": "error"}.
  for (const { data = {} } of responses) {
    const protocol = data.value ?? '';
    if (data.type === 'error') failures += 1;
    else perProtocol.set(protocol, (perProtocol.get(protocol) || 0) + 1);
  }
  const wall = (millis(event.completedAt) - millis(event.startedAt)) / 1000;
  const protocols = [...perProtocol].sort(([a], [b]) => a.localeCompare(b))
    .map(([name, n]) => `${name} ${n}`).join(', ');
  return [
    `State: ${String(event.state ?? 'STATE_UNSPECIFIED').replace(/^STATE_/, '')}`,
    `Total: ${responses.length} of ${requested}`,
    `Per protocol: ${protocols || '-'}`,
    `Failures: ${failures}`,
    `Wall time: ${wall.toFixed(3)} s`,
  ];
}

$('bg-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  if (bgCall) return;
  const requested = Math.max(1, Math.floor(Number($('bg-processes').value) || 1));
  const progress = $('bg-progress');
  const status = $('bg-status');
  progress.max = requested;
  progress.value = 0;
  status.classList.remove('error');
  status.textContent = 'Starting...';
  show($('bg-summary'), []);
  bgCall = new AbortController();
  $('bg-start').disabled = true;
  $('bg-cancel').disabled = false;
  try {
    let final = null;
    for await (const reply of stream('Background', [{ processes: requested }], bgCall.signal)) {
      const event = reply.cloudEvent?.protoData ?? {};
      const done = (event.responses ?? []).length;
      progress.value = done;
      status.textContent = `${done} of ${requested} done`;
      if (event.state !== 'STATE_PROCESS') final = event;
    }
    if (!final) throw new Error('the stream ended without a final event');
    status.textContent = 'Done.';
    show($('bg-summary'), summary(final, requested));
  } catch (err) {
    if (bgCall.signal.aborted) {
      status.textContent = 'Cancelled.';
    } else {
      status.textContent = `Background failed: ${describe(err)}`;
      status.classList.add('error');
    }
  } finally {
    bgCall = null;
    $('bg-start').disabled = false;
    $('bg-cancel').disabled = true;
  }
});

$('bg-cancel').addEventListener('click', () => {
  if (bgCall) bgCall.abort();
});

// Anything not caught above is still shown, never a silent blank.
window.addEventListener('unhandledrejection', (e) => {
  const p = document.createElement('p');
  p.className = 'error';
  p.textContent = `Unexpected error: ${describe(e.reason)}`;
  document.querySelector('main').prepend(p);
});
