// Connect-protocol interop check with connect-es (@connectrpc/connect-node v2), no generated code:
// the service descriptor is built at run time from a FileDescriptorSet of idl/.
//
// Usage: node tests/interop/connect-es.mjs FDS_FILE [BASE_URL]   (or env FDS / BASE_URL;
// BASE_URL defaults to http://127.0.0.1:50071). From the repository root, in one line:
//
//   (cd tests/interop && npm ci --no-audit --no-fund) && tests/interop/node_modules/.bin/buf build idl --as-file-descriptor-set -o /tmp/basic.binpb && node tests/interop/connect-es.mjs /tmp/basic.binpb http://127.0.0.1:50071
//
// Prints `ok - NAME` or `not ok - NAME` (with detail) per check, then `N passed, N failed`;
// exits 1 if any check failed.
import { readFileSync } from "node:fs";
import { subscribe } from "node:diagnostics_channel";
import { createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import { anyUnpack, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";

const fdsPath = process.argv[2] ?? process.env.FDS;
const baseUrl = process.argv[3] ?? process.env.BASE_URL ?? "http://127.0.0.1:50071";
if (!fdsPath) {
  console.error("usage: node connect-es.mjs FDS_FILE [BASE_URL]");
  process.exit(2);
}
const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, readFileSync(fdsPath)));
const service = registry.getService("basic.v1.BasicService");
const BadRequest = registry.getMessage("google.rpc.BadRequest");
const State = registry.getEnum("basic.service.v1.State");
if (!service || !BadRequest || !State) throw new Error(`${fdsPath} lacks the service or its types`);

// The HTTP/1.1 requests node sends (method, path, headers), to see GET and the timeout header.
// (Node 20 may publish a request twice on a reused keep-alive socket: keep each once.)
const requests = new Set();
subscribe("http.client.request.start", ({ request }) => requests.add(request));
const sent = () => [...requests].map((r) => ({ method: r.method, path: r.path, headers: r.getHeaders() }));

const clientFor = (httpVersion, json, extra = {}) =>
  createClient(service, createConnectTransport({
    baseUrl, httpVersion, useBinaryFormat: !json, jsonOptions: { registry }, ...extra,
  }));

let passed = 0;
let failed = 0;
async function check(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`ok - ${name}`);
  } catch (e) {
    failed++;
    console.log(`not ok - ${name}`);
    const detail = e instanceof ConnectError ? `ConnectError [${Code[e.code]}] ${e.rawMessage}` : e?.stack ?? e;
    console.log(String(detail).replace(/^/gm, "  # "));
  }
}
function expect(cond, what, got) {
  if (!cond) throw new Error(`expected ${what}; got ${JSON.stringify(got, (_, v) => typeof v === "bigint" ? `${v}n` : v)}`);
}

// The payload of a CloudEvent (its proto_data Any), unpacked with the registry.
function payload(cloudEvent) {
  expect(cloudEvent?.data?.case === "protoData", "cloud_event.proto_data", cloudEvent?.data?.case);
  const msg = anyUnpack(cloudEvent.data.value, registry);
  expect(msg, `a registered type in the Any`, cloudEvent.data.value.typeUrl);
  return msg;
}

async function hello(client, options) {
  const res = await client.hello({ message: "Ada" }, options);
  const event = payload(res.cloudEvent);
  expect(event.$typeName === "basic.service.v1.HelloResponseEvent", "a HelloResponseEvent", event.$typeName);
  expect(event.greeting === "Hello, Ada", 'greeting "Hello, Ada"', event.greeting);
}

async function background(client) {
  const events = [];
  for await (const res of client.background({ processes: 5n })) events.push(payload(res.cloudEvent));
  expect(events.length > 1, "several streamed messages", events.length);
  const last = events.at(-1);
  const state = State.value[last.state]?.name;
  expect(["STATE_COMPLETE", "STATE_COMPLETE_WITH_ERROR"].includes(state), "a complete state last", state);
  expect(last.responses.length === 5, "5 responses in the last message", last.responses.length);
}

// A request stream the test feeds one message at a time.
function pushable() {
  const items = [];
  let wake = () => {};
  let ended = false;
  return {
    push(v) { items.push(v); wake(); },
    end() { ended = true; wake(); },
    async *[Symbol.asyncIterator]() {
      for (;;) {
        if (items.length) yield items.shift();
        else if (ended) return;
        else await new Promise((r) => (wake = r));
      }
    },
  };
}

async function talk(client) {
  const requests = pushable();
  const responses = client.talk(requests, { timeoutMs: 15000 })[Symbol.asyncIterator]();
  try {
    requests.push({ message: "Men are all alike." });
    const first = await responses.next();
    expect(first.value?.answer === "In what way?", '"In what way?" before the next request', first.value);
    requests.push({ message: "bye" });
    const second = await responses.next();
    expect(second.value?.answer?.includes("Goodbye."), 'an answer with "Goodbye."', second.value);
    const end = await responses.next(); // the request stream is still open: the server ends it
    expect(end.done, "the end of the response stream", end.value);
  } finally {
    requests.end();
  }
}

await check("Hello, JSON, HTTP/1.1", () => hello(clientFor("1.1", true)));
await check("Hello, binary, HTTP/2", () => hello(clientFor("2", false)));
await check("Hello, JSON, HTTP/1.1, Connect GET", async () => {
  expect(service.method.hello.idempotency === 1, "Hello marked NO_SIDE_EFFECTS", service.method.hello.idempotency);
  requests.clear();
  await hello(clientFor("1.1", true, { useHttpGet: true }));
  const [req, ...more] = sent();
  expect(req?.method === "GET" && !more.length, "one GET request", sent());
  expect(/[?&]encoding=json(&|$)/.test(req.path), "encoding=json in the query", req.path);
});
await check("Background {processes: 5}, binary, HTTP/1.1", () => background(clientFor("1.1", false)));
await check("Background {processes: 5}, JSON, HTTP/2", () => background(clientFor("2", true)));
await check("Talk bidi, binary, HTTP/2", () => talk(clientFor("2", false)));
await check("Talk bidi, JSON, HTTP/2", () => talk(clientFor("2", true)));
for (const [httpVersion, json] of [["1.1", false], ["2", true]]) {
  await check(`Background {processes: 5000} is InvalidArgument with a BadRequest, ${json ? "JSON" : "binary"}, HTTP/${httpVersion}`, async () => {
    let err;
    try {
      for await (const _ of clientFor(httpVersion, json).background({ processes: 5000n }));
    } catch (e) {
      err = ConnectError.from(e);
    }
    expect(err, "a ConnectError", "the stream ended without one");
    expect(err.code === Code.InvalidArgument, "code InvalidArgument", Code[err.code]);
    expect(err.rawMessage === "processes is 5000; the maximum is 1000", "the message", err.rawMessage);
    const details = err.findDetails(BadRequest);
    expect(details.some((d) => d.fieldViolations.some((v) => v.field === "processes")),
      'a google.rpc.BadRequest naming field "processes"', err.details.map((d) => d.desc?.typeName ?? d.type));
  });
}
await check("Hello with timeoutMs: 5000, JSON, HTTP/1.1", async () => {
  requests.clear();
  await hello(clientFor("1.1", true), { timeoutMs: 5000 });
  const headers = sent()[0]?.headers;
  expect(headers?.["connect-timeout-ms"] === "5000", "header connect-timeout-ms: 5000", headers);
});

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
