#!/usr/bin/env bash
# A rolling restart of basic-service behind nginx, under load: does any call fail?
#
# Starts 3 replicas and nginx on loopback ports (nginx runs conf.d/basic-service.conf and
# snippets/basic-service-grpc.conf from this directory, with only the addresses and
# certificate paths rewritten), drives a steady mixed load through nginx with the
# project's own client (examples/load.rs: Hello, short Talk conversations, Background
# calls with short simulated delays) plus a few long Talk conversations, restarts every
# replica in turn (SIGTERM; the replica drains, then closes; a new one starts on the same
# port; wait until it is SERVING), and reports calls made, failures by code and the
# largest gap between successful calls.
#
# It passes when no Hello, short conversation or Background call failed, every long
# conversation cut by a restart ended with UNAVAILABLE from the server (not a transport
# error), every replica exited 0, and nginx's error pages and TLS front door answered.
#
# Usage: deploy/nginx/rollout.sh            (from anywhere; builds what it needs)
# Environment (defaults in brackets):
#   ROUNDS [1]          full rollouts (every replica restarted once per round)
#   CLIENTS [4]         load processes (each its own HTTP/2 connection to nginx)
#   CONCURRENCY [4]     calls in flight per load process
#   LONG_STREAMS [2]    long conversations (a message every 100 ms) open at all times
#   DRAIN [2] GRACE [3] the replicas' --shutdown-drain-secs and --shutdown-grace-secs
#   SETTLE [3]          seconds between one replica SERVING and stopping the next
#   PORT_BASE [18050]   nginx h2c; replicas +1..+3; nginx TLS +4; replica metrics +11..+13
#   UPSTREAM_KEEPALIVE  idle upstream connections nginx keeps per worker (as shipped: 128);
#                       a small number (2) makes nginx open a connection for most calls,
#                       which exercises how replicas close their listeners
#   PROFILE [release]   cargo profile of the binaries (CI uses debug, already built)
#   KEEP [0]            1: keep the work directory (logs, nginx access log) and say where
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
. "$root/tools/target-dir.sh"

ROUNDS="${ROUNDS:-1}"
CLIENTS="${CLIENTS:-4}"
CONCURRENCY="${CONCURRENCY:-4}"
LONG_STREAMS="${LONG_STREAMS:-2}"
DRAIN="${DRAIN:-2}"
GRACE="${GRACE:-3}"
SETTLE="${SETTLE:-3}"
PORT_BASE="${PORT_BASE:-18050}"
PROFILE="${PROFILE:-release}"
KEEP="${KEEP:-0}"

h2c_port=$PORT_BASE
tls_port=$((PORT_BASE + 4))
replica_port() { echo $((PORT_BASE + $1)); }
metrics_port() { echo $((PORT_BASE + 10 + $1)); }

log() { printf '%s %s\n' "$(date +%T)" "$*"; }
die() { log "FAIL: $*"; exit 1; }

# --- tools ------------------------------------------------------------------------------

if ! command -v nginx >/dev/null || ! command -v openssl >/dev/null; then
    log "installing nginx and openssl (apt-get)"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx openssl >/dev/null
fi
nginx_bin="$(command -v nginx)"

if [ "$PROFILE" = release ]; then profile_flag=(--release); else profile_flag=(); fi
log "building the server and the example clients ($PROFILE)"
(cd "$root" && cargo build --quiet "${profile_flag[@]}" --bin basic-service \
    --example load --example health --example hello)
# Where that put them: cargo's target directory (CARGO_TARGET_DIR, .cargo/config).
target="$(cargo_target_dir "$root")"
bin_dir="$target/$PROFILE"
server="$bin_dir/basic-service"
load="$bin_dir/examples/load"
health="$bin_dir/examples/health"
hello="$bin_dir/examples/hello"
build="cargo build${profile_flag[*]:+ ${profile_flag[*]}}"
require_bin "$server" "$build --bin basic-service" || exit 1
for example in load health hello; do
    require_bin "$bin_dir/examples/$example" "$build --example $example" || exit 1
done

# --- work directory, and cleaning up whatever we started -------------------------------

work="$(mktemp -d /tmp/basic-rollout.XXXXXX)"
chmod 755 "$work"   # nginx workers (user nobody) read nothing here, but may list it
declare -A replica_pid=()
declare -A replica_started=()
client_pids=()
long_pid=""
nginx_pid=""

cleanup() {
    local pid
    for pid in "${client_pids[@]}" $long_pid "${replica_pid[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
    done
    if [ -n "$nginx_pid" ]; then kill -TERM "$nginx_pid" 2>/dev/null || true; fi
    wait 2>/dev/null || true
    if [ "$KEEP" = 1 ]; then log "work directory kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# --- TLS material for nginx's TLS server: a CA and a certificate for localhost ---------

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=rollout-test-ca -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -subj /CN=localhost -keyout "$work/tls.key" -out "$work/tls.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$work/ext.cnf"
openssl x509 -req -in "$work/tls.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" \
    -CAcreateserial -days 2 -extfile "$work/ext.cnf" -out "$work/tls.pem" 2>/dev/null

# --- nginx: the shipped configuration on test ports ------------------------------------

mkdir -p "$work/conf.d" "$work/snippets" "$work/tmp"
cp "$here/snippets/basic-service-grpc.conf" "$work/snippets/"
sed -e "/# rollout: replica 1\$/ s/127\.0\.0\.1:[0-9]*/127.0.0.1:$(replica_port 1)/" \
    -e "/# rollout: replica 2\$/ s/127\.0\.0\.1:[0-9]*/127.0.0.1:$(replica_port 2)/" \
    -e "/# rollout: replica 3\$/ s/127\.0\.0\.1:[0-9]*/127.0.0.1:$(replica_port 3)/" \
    -e "/# rollout: h2c\$/ s/listen [0-9]*/listen 127.0.0.1:$h2c_port/" \
    -e "/# rollout: tls\$/ s/listen [0-9]*/listen 127.0.0.1:$tls_port/" \
    -e "/# rollout: certificate\$/ s|ssl_certificate  *[^;]*;|ssl_certificate $work/tls.pem;|" \
    -e "/# rollout: key\$/ s|ssl_certificate_key  *[^;]*;|ssl_certificate_key $work/tls.key;|" \
    -e "/# rollout: keepalive\$/ s|keepalive [0-9]*;|keepalive ${UPSTREAM_KEEPALIVE:-128};|" \
    "$here/conf.d/basic-service.conf" >"$work/conf.d/basic-service.conf"
# Every rewrite must have applied, or the test would run something else than it says.
for expected in "127.0.0.1:$(replica_port 1) " "127.0.0.1:$(replica_port 2) " \
    "127.0.0.1:$(replica_port 3) " "listen 127.0.0.1:$h2c_port http2" \
    "listen 127.0.0.1:$tls_port ssl" "ssl_certificate $work/tls.pem;" \
    "ssl_certificate_key $work/tls.key;" "keepalive ${UPSTREAM_KEEPALIVE:-128};"; do
    grep -qF "$expected" "$work/conf.d/basic-service.conf" ||
        die "conf.d/basic-service.conf: the line for '$expected' was not rewritten"
done
cat >"$work/nginx.conf" <<EOF
# Generated by deploy/nginx/rollout.sh: a minimal main context around the shipped files.
worker_processes 2;
pid $work/nginx.pid;
error_log $work/nginx-error.log notice;
events { worker_connections 4096; }
http {
    default_type application/octet-stream;
    client_body_temp_path $work/tmp/body;
    proxy_temp_path $work/tmp/proxy;
    fastcgi_temp_path $work/tmp/fastcgi;
    uwsgi_temp_path $work/tmp/uwsgi;
    scgi_temp_path $work/tmp/scgi;
    log_format grpc '\$msec \$status grpc-status=\$sent_trailer_grpc_status '
                    'upstream=\$upstream_addr upstream-status=\$upstream_status \$request_uri';
    access_log $work/nginx-access.log grpc;
    include conf.d/basic-service.conf;
}
EOF
"$nginx_bin" -t -q -p "$work" -c "$work/nginx.conf" || die "nginx refuses the configuration"

# --- replicas ------------------------------------------------------------------------------

start_replica() { # $1: replica number
    local i=$1
    RUST_LOG=warn "$server" --addr "127.0.0.1:$(replica_port "$i")" \
        --metrics-addr "127.0.0.1:$(metrics_port "$i")" \
        --shutdown-drain-secs "$DRAIN" --shutdown-grace-secs "$GRACE" \
        --sim-delay-min-ms 5 --sim-delay-max-ms 50 \
        >>"$work/replica-$i.log" 2>&1 &
    replica_pid[$i]=$!
    replica_started[$i]=$(date +%s.%N)
    "$health" --addr "127.0.0.1:$(replica_port "$i")" --wait-secs 30 >/dev/null ||
        die "replica $i is not SERVING 30 s after its start (replica-$i.log)"
}

# Peak RSS and CPU time of a replica, from /proc, just before it is stopped.
clk_tck=$(getconf CLK_TCK)
usage_lines=()
record_usage() { # $1: replica number
    local i=$1 pid=${replica_pid[$1]} hwm ticks now
    hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    ticks=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)
    now=$(date +%s.%N)
    usage_lines+=("$(awk -v kb="$hwm" -v t="$ticks" -v hz="$clk_tck" \
        -v s="${replica_started[$i]}" -v e="$now" \
        'BEGIN { printf "%.1f %.2f %.1f", kb / 1024, t / hz, e - s }')")
}

stop_took=""
stop_replica() { # $1: replica number; sets stop_took (seconds from SIGTERM to exit)
    local i=$1 pid=${replica_pid[$1]} t0 code limit
    record_usage "$i"
    t0=$(date +%s.%N)
    kill -TERM "$pid"
    limit=$((DRAIN + GRACE + 10))
    for ((n = 0; n < limit * 10; n++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid"
        die "replica $i still running ${limit} s after SIGTERM"
    fi
    code=0
    wait "$pid" || code=$?
    [ "$code" = 0 ] || die "replica $i exited with $code after SIGTERM (replica-$i.log)"
    stop_took=$(awk -v s="$t0" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
}

"$nginx_bin" -p "$work" -c "$work/nginx.conf" -g 'daemon off;' &
nginx_pid=$!
for ((n = 0; n < 100; n++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$h2c_port") 2>/dev/null && break
    sleep 0.1
done

# With no replica up, nginx must answer with a gRPC status, not an HTML 502 page.
"$hello" --addr "127.0.0.1:$h2c_port" --timeout-secs 10 >"$work/no-replica.out" 2>&1 &&
    die "a call succeeded with no replica running"
grep -q "^hello: UNAVAILABLE: no replica available (nginx)" "$work/no-replica.out" ||
    die "with no replica, expected nginx's UNAVAILABLE error page, got: $(cat "$work/no-replica.out")"
log "no replica up: the client gets $(head -c 200 "$work/no-replica.out")"

for i in 1 2 3; do start_replica "$i"; done
"$health" --addr "127.0.0.1:$h2c_port" --wait-secs 10 >/dev/null ||
    die "health through nginx is not SERVING"
"$hello" --addr "127.0.0.1:$tls_port" --tls-ca "$work/ca.pem" --timeout-secs 10 \
    >"$work/tls.out" 2>&1 || die "Hello through nginx's TLS server failed: $(cat "$work/tls.out")"
log "3 replicas SERVING; health and Hello through nginx (h2c and TLS) answer"

# --- load -----------------------------------------------------------------------------------

# nginx's errors from here on are the load's (the checks above made some on purpose).
errors_from=$(($(wc -l <"$work/nginx-error.log") + 1))
# Bounded: the run ends with a signal after the rollout, or at the latest at max_secs.
max_secs=$((ROUNDS * 3 * (DRAIN + GRACE + SETTLE + 40) + 60))
for ((k = 1; k <= CLIENTS; k++)); do
    "$load" --addr "127.0.0.1:$h2c_port" --rpc mixed --calls 1000000000 \
        --max-secs "$max_secs" --concurrency "$CONCURRENCY" --talk-messages 3 \
        --background-processes 3 >"$work/client-$k.out" 2>&1 &
    client_pids+=($!)
done
if [ "$LONG_STREAMS" -gt 0 ]; then
    "$load" --addr "127.0.0.1:$h2c_port" --rpc mixed --mix talk --calls 1000000000 \
        --max-secs "$max_secs" --concurrency "$LONG_STREAMS" --talk-messages 100000 \
        --talk-pause-ms 100 >"$work/long.out" 2>&1 &
    long_pid=$!
fi
log "load: $CLIENTS clients x $CONCURRENCY calls in flight (Hello, Talk x3, Background x3)," \
    "$LONG_STREAMS long conversations"
sleep "$SETTLE"

# --- the rollout ----------------------------------------------------------------------------

rollout_start=$(date +%s)
for ((round = 1; round <= ROUNDS; round++)); do
    for i in 1 2 3; do
        stop_replica "$i"
        t0=$(date +%s.%N)
        start_replica "$i"
        up=$(awk -v s="$t0" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
        log "round $round: replica $i exited 0 ${stop_took} s after SIGTERM; its replacement" \
            "was SERVING ${up} s later"
        sleep "$SETTLE"
    done
done
rollout_secs=$(($(date +%s) - rollout_start))
for i in 1 2 3; do record_usage "$i"; done

# --- results -------------------------------------------------------------------------------

for pid in "${client_pids[@]}" $long_pid; do kill -TERM "$pid" 2>/dev/null || true; done
for pid in "${client_pids[@]}" $long_pid; do wait "$pid" || true; done
client_pids=()
long_pid=""
# The last replicas stop as the others did (in parallel: no call is open any more).
for i in 1 2 3; do kill -TERM "${replica_pid[$i]}"; done
for i in 1 2 3; do
    code=0
    wait "${replica_pid[$i]}" || code=$?
    [ "$code" = 0 ] || die "replica $i exited with $code after SIGTERM (replica-$i.log)"
    unset "replica_pid[$i]"
done

summary() { # $@: load output files; sums their summary lines
    awk '
        /^summary / {
            found++
            for (f = 2; f <= NF; f++) {
                split($f, kv, "=")
                if (kv[1] == "max_gap_ms") { if (kv[2] > gap) gap = kv[2] }
                else if (kv[1] == "codes") {
                    if (kv[2] != "-") {
                        n = split(kv[2], codes, ",")
                        for (c = 1; c <= n; c++) {
                            split(codes[c], cn, ":"); by[cn[1]] += cn[2]
                        }
                    }
                }
                else sum[kv[1]] += kv[2]
            }
        }
        END {
            list = ""
            for (c in by) list = list (list == "" ? "" : ",") c ":" by[c]
            printf "files=%d calls=%d ok=%d failed=%d failed_unary=%d failed_stream=%d max_gap_ms=%d codes=%s\n",
                found, sum["calls"], sum["ok"], sum["failed"], sum["failed_unary"],
                sum["failed_stream"], gap, (list == "" ? "-" : list)
        }' "$@"
}
field() { # $1: summary line, $2: key
    tr ' ' '\n' <<<"$1" | awk -F= -v k="$2" '$1 == k { print $2 }'
}

mixed=$(summary "$work"/client-*.out)
[ "$(field "$mixed" files)" = "$CLIENTS" ] ||
    die "not every load client reported: $(tail -n 3 "$work"/client-*.out)"
verdict=0
echo
echo "rollout: $ROUNDS round(s), 3 replicas, drain ${DRAIN} s, grace ${GRACE} s, ${rollout_secs} s"
printf 'mixed load: %s calls, %s failed (unary %s, streams %s), by code: %s; largest gap %s ms\n' \
    "$(field "$mixed" calls)" "$(field "$mixed" failed)" "$(field "$mixed" failed_unary)" \
    "$(field "$mixed" failed_stream)" "$(field "$mixed" codes)" "$(field "$mixed" max_gap_ms)"
[ "$(field "$mixed" failed)" = 0 ] || verdict=1
if [ "$LONG_STREAMS" -gt 0 ]; then
    long=$(summary "$work/long.out")
    [ "$(field "$long" files)" = 1 ] || die "the long conversations did not report: $(tail -n 3 "$work/long.out")"
    printf 'long conversations: %s, cut by a restart: %s, by code: %s\n' \
        "$(field "$long" calls)" "$(field "$long" failed)" "$(field "$long" codes)"
    # A cut conversation must end with the server's UNAVAILABLE, nothing else.
    codes=$(field "$long" codes)
    if [ "$codes" != "-" ] && [ "$codes" != "UNAVAILABLE:$(field "$long" failed)" ]; then
        verdict=1
    fi
fi
tail -n "+$errors_from" "$work/nginx-error.log" >"$work/nginx-error-load.log"
refused=$(grep -c 'connect() failed (111' "$work/nginx-error-load.log" || true)
others=$(grep '\[error\]' "$work/nginx-error-load.log" | grep -vc 'connect() failed (111' || true)
echo "nginx: $refused connection(s) refused by a restarting replica (retried on another);" \
    "$others other error(s)"
grep '\[error\]' "$work/nginx-error-load.log" | grep -v 'connect() failed (111' |
    sed -e 's/^[^]]*\] [0-9#]*: \*[0-9]* //' -e 's/, client:.*//' | sort | uniq -c | head -n 10 || true
printf '%s\n' "${usage_lines[@]}" | awk '
    { if ($1 > rss) rss = $1; cpu += $2; secs += $3 }
    END { printf "replicas: peak RSS %.1f MB; CPU %.1f s over %.0f s of uptime (%.0f%% of a core)\n",
          rss, cpu, secs, 100 * cpu / secs }'
if [ "$verdict" = 0 ]; then echo "RESULT: PASS"; else echo "RESULT: FAIL"; fi
[ "$KEEP" = 1 ] || [ "$verdict" = 0 ] || KEEP=1
exit "$verdict"
