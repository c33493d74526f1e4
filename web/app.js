// The page's script: gRPC-Web calls to this server with fetch, and the few protobuf
// messages of basic.v1.BasicService encoded and decoded by hand (no build step, no
// library). Field numbers are those of idl/basic/service/v1/service.proto and
// idl/cloudevents/v1/cloudevents.proto.
'use strict';

// ---- protobuf -------------------------------------------------------------

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

/** A varint's bytes; negative numbers as 64-bit two's complement, as protobuf does. */
function varint(n) {
  let v = BigInt.asUintN(64, BigInt(n));
  const out = [];
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return out;
}

/** A message from [field, value] pairs: strings (wire type 2) or integers (wire type 0). */
function encode(pairs) {
  const out = [];
  for (const [field, value] of pairs) {
    if (typeof value === 'string') {
      const bytes = utf8.encode(value);
      out.push(...varint(field * 8 + 2), ...varint(bytes.length), ...bytes);
    } else {
      out.push(...varint(field * 8), ...varint(value));
    }
  }
  return new Uint8Array(out);
}

/** A message's fields: field number -> list of values (numbers or byte arrays). */
function decode(bytes) {
  const fields = new Map();
  let i = 0;
  const readVarint = () => {
    let result = 0;
    let scale = 1;
    for (;;) {
      if (i >= bytes.length) throw new Error('truncated protobuf message');
      const b = bytes[i++];
      result += (b & 0x7f) * scale;
      scale *= 128;
      if (!(b & 0x80)) return result;
    }
  };
  while (i < bytes.length) {
    const key = readVarint();
    const field = Math.floor(key / 8);
    let value;
    switch (key % 8) {
      case 0: value = readVarint(); break;
      case 1: value = bytes.subarray(i, i + 8); i += 8; break;
      case 2: {
        const len = readVarint();
        if (i + len > bytes.length) throw new Error('truncated protobuf message');
        value = bytes.subarray(i, i + len);
        i += len;
        break;
      }
      case 5: value = bytes.subarray(i, i + 4); i += 4; break;
      default: throw new Error(`unsupported protobuf wire type ${key % 8}`);
    }
    if (!fields.has(field)) fields.set(field, []);
    fields.get(field).push(value);
  }
  return fields;
}

const last = (fields, n) => (fields.get(n) || []).at(-1);
const str = (fields, n) => fromUtf8.decode(last(fields, n) || new Uint8Array());
const num = (fields, n) => last(fields, n) || 0;
const sub = (fields, n) => decode(last(fields, n) || new Uint8Array());
const subs = (fields, n) => (fields.get(n) || []).map(decode);

/** google.protobuf.Timestamp -> Date. */
const time = (ts) => new Date(num(ts, 1) * 1000 + num(ts, 2) / 1e6);

/** cloudevents.v1.CloudEvent: attributes, the `time` attribute, and the Any payload. */
function cloudEvent(fields) {
  const event = {
    id: str(fields, 1), source: str(fields, 2), type: str(fields, 4), time: null,
  };
  for (const entry of subs(fields, 5)) {
    if (str(entry, 1) === 'time') event.time = time(sub(sub(entry, 2), 7));
  }
  const any = sub(fields, 8);
  event.dataType = str(any, 1);
  event.data = decode(last(any, 2) || new Uint8Array());
  return event;
}

// ---- gRPC-Web ---------------------------------------------------------------

const CODES = ['OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED',
  'NOT_FOUND', 'ALREADY_EXISTS', 'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE', 'UNIMPLEMENTED', 'INTERNAL',
  'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED'];

class GrpcError extends Error {
  constructor(code, message) {
    super(`${CODES[code] || `code ${code}`}: ${message}`);
    this.code = code;
  }
}

function statusError(code, message) {
  let text = message || '';
  try { text = decodeURIComponent(text); } catch { /* shown as sent */ }
  return new GrpcError(Number(code), text);
}

/** One length-prefixed gRPC frame. */
function frame(message) {
  const out = new Uint8Array(5 + message.length);
  new DataView(out.buffer).setUint32(1, message.length);
  out.set(message, 5);
  return out;
}

/**
 * Calls `method` of basic.v1.BasicService with `messages` (one for unary and server
 * streams; several for Talk, sent as one client stream) and yields each reply as it
 * arrives. Throws GrpcError for a non-OK status; `signal` cancels the call.
 */
async function* call(method, messages, signal) {
  const body = new Uint8Array(messages.reduce((n, m) => n + 5 + m.length, 0));
  let at = 0;
  for (const m of messages) { body.set(frame(m), at); at += 5 + m.length; }
  const res = await fetch(`/basic.v1.BasicService/${method}`, {
    method: 'POST',
    headers: { 'content-type': 'application/grpc-web+proto', 'x-grpc-web': '1' },
    body,
    signal,
  });
  if (!res.ok) throw new Error(`HTTP ${res.status} ${res.statusText}`);
  // Trailers-only: the status is in the headers and the body is empty.
  if (res.headers.has('grpc-status')) {
    const code = res.headers.get('grpc-status');
    if (code !== '0') throw statusError(code, res.headers.get('grpc-message'));
    return;
  }
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
      if (flag & 0x80) {
        // Trailers: HTTP/1-style header lines.
        const trailers = new Map();
        for (const line of fromUtf8.decode(payload).split('\r\n')) {
          const colon = line.indexOf(':');
          if (colon > 0) trailers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
        }
        const code = trailers.get('grpc-status');
        if (code === undefined) throw new Error('protocol error: trailers without grpc-status');
        if (code !== '0') throw statusError(code, trailers.get('grpc-message'));
        return;
      }
      if (flag !== 0) throw new Error('protocol error: compressed message not expected');
      yield payload;
    }
    const { value, done } = await reader.read();
    if (done) throw new Error('protocol error: the response ended without trailers');
    chunks.push(value);
    buffered += value.length;
  }
}

/** The reply of a unary call (read to the end, so that its status is checked too). */
async function unary(method, message) {
  const replies = [];
  for await (const reply of call(method, [message])) replies.push(reply);
  if (replies.length !== 1) throw new Error(`protocol error: ${replies.length} replies`);
  return replies[0];
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
    const reply = await unary('Hello', encode([[1, $('hello-name').value]]));
    const event = cloudEvent(sub(decode(reply), 1));
    show(out, [
      str(event.data, 1),
      `id: ${event.id}`,
      `source: ${event.source}`,
      `type: ${event.type}`,
      `time: ${event.time ? event.time.toISOString() : '-'}`,
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
    const messages = [...history, ''].map((m) => encode([[1, m]]));
    for await (const reply of call('Talk', messages)) replies.push(str(decode(reply), 1));
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

const STATES = ['UNSPECIFIED', 'PROCESS', 'COMPLETE', 'ERROR', 'COMPLETE_WITH_ERROR'];
let bgCall = null;

function summary(event, requested) {
  const responses = subs(event, 4).map((r) => ({ data: sub(r, 4) }));
  const perProtocol = new Map();
  let failures = 0;
  for (const { data } of responses) {
    if (str(data, 2) === 'error') failures += 1;
    else perProtocol.set(str(data, 1), (perProtocol.get(str(data, 1)) || 0) + 1);
  }
  const wall = (time(sub(event, 3)) - time(sub(event, 2))) / 1000;
  const protocols = [...perProtocol].sort(([a], [b]) => a.localeCompare(b))
    .map(([name, n]) => `${name} ${n}`).join(', ');
  return [
    `State: ${STATES[num(event, 1)] || num(event, 1)}`,
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
    for await (const reply of call('Background', [encode([[1, requested]])], bgCall.signal)) {
      const event = cloudEvent(sub(decode(reply), 1)).data;
      const done = (event.get(4) || []).length;
      progress.value = done;
      status.textContent = `${done} of ${requested} done`;
      if (num(event, 1) !== 1) final = event;
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
