#!/usr/bin/env python3
"""A minimal OTLP trace receiver for trying traces out and for benchmarks.

It accepts OTLP/HTTP protobuf exports on POST /v1/traces (Python's standard library
only) or, with --grpc, OTLP/gRPC exports (needs `pip install grpcio`), answers each with
success, and prints every few seconds how many exports, bytes and spans arrived. It
keeps nothing: for looking at spans, use an OpenTelemetry Collector or Jaeger (see
docs/operations.md#traces).

    tools/otlp-sink.py                      # HTTP on 127.0.0.1:4318
    tools/otlp-sink.py --grpc               # gRPC on 127.0.0.1:4317
    OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 cargo run --release

With --count-spans it also counts spans, by reading the protobuf's outer fields
(resource spans, scope spans, spans) without a protobuf library; that costs the sink
far more CPU than receiving, so benchmarks leave it off.
"""

import argparse
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 64 * 1024 * 1024


class Totals:
    def __init__(self, count_spans):
        self.count_spans = count_spans
        self.lock = threading.Lock()
        self.exports = 0
        self.bytes = 0
        self.spans = 0

    def add(self, body):
        spans = count_spans(body) if self.count_spans else 0
        with self.lock:
            self.exports += 1
            self.bytes += len(body)
            self.spans += spans


def varint(data, at):
    value, shift = 0, 0
    while True:
        if at >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, at


def fields(data):
    """(field number, wire type, value or bytes) of each field of a message."""
    at = 0
    while at < len(data):
        key, at = varint(data, at)
        number, kind = key >> 3, key & 7
        if kind == 0:
            value, at = varint(data, at)
            yield number, kind, value
        elif kind == 1:
            at += 8
        elif kind == 2:
            size, at = varint(data, at)
            yield number, kind, data[at : at + size]
            at += size
        elif kind == 5:
            at += 4
        else:
            raise ValueError(f"wire type {kind}")


def count_spans(body):
    """Spans in an ExportTraceServiceRequest (resource_spans=1 > scope_spans=2 > spans=2)."""
    try:
        total = 0
        for number, kind, resource in fields(body):
            if number != 1 or kind != 2:
                continue
            for number, kind, scope in fields(resource):
                if number != 2 or kind != 2:
                    continue
                total += sum(1 for n, k, _ in fields(scope) if n == 2 and k == 2)
        return total
    except ValueError:
        return 0


def serve_http(addr, totals):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            length = int(self.headers.get("content-length") or 0)
            if self.path != "/v1/traces" or not 0 <= length <= MAX_BODY:
                self.send_response(404)
                self.send_header("content-length", "0")
                self.end_headers()
                return
            totals.add(self.rfile.read(length))
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    host, port = addr
    server = ThreadingHTTPServer((host, port), Handler)
    print(f"OTLP/HTTP sink on http://{host}:{port}/v1/traces", file=sys.stderr, flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()


def serve_grpc(addr, totals):
    from concurrent import futures

    import grpc

    def export(request, _context):
        totals.add(request)
        return b""

    handler = grpc.method_handlers_generic_handler(
        "opentelemetry.proto.collector.trace.v1.TraceService",
        {"Export": grpc.unary_unary_rpc_method_handler(export)},
    )
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4),
        options=[("grpc.max_receive_message_length", MAX_BODY)],
    )
    server.add_generic_rpc_handlers((handler,))
    host, port = addr
    server.add_insecure_port(f"{host}:{port}")
    server.start()
    print(f"OTLP/gRPC sink on http://{host}:{port}", file=sys.stderr, flush=True)
    return server


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grpc", action="store_true", help="OTLP/gRPC instead of HTTP")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, help="default 4318 (HTTP) or 4317 (gRPC)")
    parser.add_argument("--count-spans", action="store_true", help="also count spans (costs CPU)")
    parser.add_argument("--every", type=float, default=5.0, help="seconds between reports")
    parser.add_argument("--for", dest="duration", type=float, help="stop after this many seconds")
    args = parser.parse_args()
    totals = Totals(args.count_spans)
    port = args.port or (4317 if args.grpc else 4318)
    keep = serve_grpc((args.host, port), totals) if args.grpc else serve_http((args.host, port), totals)
    started = time.monotonic()
    try:
        while args.duration is None or time.monotonic() - started < args.duration:
            time.sleep(args.every)
            with totals.lock:
                print(
                    f"{totals.exports} exports, {totals.bytes} bytes, {totals.spans} spans",
                    file=sys.stderr,
                    flush=True,
                )
    except KeyboardInterrupt:
        pass
    del keep


if __name__ == "__main__":
    main()
