#!/usr/bin/env bash
# Connect and JSON against gRPC, on one server: Hello over HTTP/2 (h2c) driven by h2load,
# 10 connections x 10 streams, as
#   grpc          application/grpc, the framed protobuf request
#   connect_proto application/proto, the bare protobuf request (Connect unary)
#   connect_json  application/json, {"message":"Ada"} (Connect unary, JSON both ways)
# The server is pinned to SERVER_CPU, h2load to CLIENT_CPU; the three run in turn in every
# round, so drift hits them alike. Prints calls/s per round, the medians, and each one's
# ratio to grpc.
#
#   tools/bench-connect.sh [BIN]     (default: target/release/basic-service; build it first)
#   knobs: ROUNDS=5 DURATION=5 (s) PORT=20399 SERVER_CPU=0 CLIENT_CPU=1
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${1:-$root/target/release/basic-service}"
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5}
PORT=${PORT:-20399}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
for tool in h2load taskset python3; do
  command -v "$tool" >/dev/null || { echo "bench-connect: missing $tool (apt-get install nghttp2-client)" >&2; exit 2; }
done
[ -x "$bin" ] || { echo "bench-connect: no server at $bin (cargo build --release)" >&2; exit 2; }

work="$(mktemp -d)"
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

printf '\x0a\x03Ada' >"$work/proto"
printf '\x00\x00\x00\x00\x05\x0a\x03Ada' >"$work/grpc"
printf '{"message":"Ada"}' >"$work/json"

RUST_LOG=warn taskset -c "$SERVER_CPU" "$bin" --addr "127.0.0.1:$PORT" >"$work/server.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  h2load -n 1 "http://127.0.0.1:$PORT/" >/dev/null 2>&1 && break
  sleep 0.1
done

# run NAME BODY CONTENT-TYPE: calls/s of one timed h2load run.
run() {
  local out
  out="$(taskset -c "$CLIENT_CPU" h2load -c 10 -m 10 -D "$DURATION" --warm-up-time 1 \
    -d "$work/$2" -H "content-type: $3" -H 'te: trailers' \
    "http://127.0.0.1:$PORT/basic.v1.BasicService/Hello" 2>&1)"
  if ! grep -q ' 0 failed, 0 errored' <<<"$out" || grep -qE ' [1-9][0-9]* (3|4|5)xx' <<<"$out"; then
    echo "bench-connect: $1 had failed calls:" >&2; echo "$out" >&2; exit 1
  fi
  sed -n 's/^finished in .*, \([0-9.]*\) req\/s.*/\1/p' <<<"$out"
}

echo "round grpc connect_proto connect_json (calls/s)"
for round in $(seq 1 "$ROUNDS"); do
  g="$(run grpc grpc application/grpc)"
  p="$(run connect_proto proto application/proto)"
  j="$(run connect_json json application/json)"
  echo "$round $g $p $j" | tee -a "$work/rounds"
done
python3 - "$work/rounds" <<'EOF'
import statistics, sys
rows = [list(map(float, line.split()[1:])) for line in open(sys.argv[1])]
names = ["grpc", "connect_proto", "connect_json"]
med = [statistics.median(r[i] for r in rows) for i in range(3)]
for i, name in enumerate(names):
    ratios = sorted(r[i] / r[0] for r in rows)
    print(f"{name:14} median {med[i]:9.0f} calls/s   vs grpc {med[i] / med[0]:.2f}x "
          f"(rounds {ratios[0]:.2f}-{ratios[-1]:.2f})")
EOF
