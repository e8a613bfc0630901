#!/usr/bin/env bash
# The peer row of the hot-path benchmarks: `theater run` serving the todo example's
# `GET /todos/2` (a file chain, what a newcomer runs) beside `wasmtime serve` (wasmtime-cli
# 48.0.8, the engine Theater embeds) serving a hello-world wasi:http component, twice: reusing
# one instance for every request, and with its default of a fresh instance per request.
# Each is loaded by `wrk -t1 -c$CONNS -d$DURATION` over loopback; the script prints requests/s,
# the server's CPU time per request (from /proc), and the ratios.
#
# Not part of `cargo xtask bench`: installing wasmtime-cli compiles wasmtime (about 15 minutes
# on 2 cores, once; it is kept in target/peer). Needs `wrk` (Debian: apt-get install wrk) and
# the wasm32-wasip2 target (added with rustup if missing).
#
#   crates/theater-bench/peer/wasmtime-serve.sh            # DURATION=10s CONNS=32 by default
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
out="$root/target/peer"
duration=${DURATION:-10s}
conns=${CONNS:-32}
wasmtime="$out/bin/wasmtime"

command -v wrk >/dev/null || { echo "wrk is missing (Debian: apt-get install wrk)" >&2; exit 1; }
if [ ! -x "$wasmtime" ] || ! "$wasmtime" --version | grep -q '^wasmtime 48\.0\.8'; then
    echo "installing wasmtime-cli 48.0.8 into $out (compiles wasmtime: ~15 min on 2 cores)" >&2
    cargo install wasmtime-cli --version 48.0.8 --locked --root "$out"
fi
rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
cargo build --quiet --release --target wasm32-wasip2 \
    --manifest-path "$here/hello/Cargo.toml" --target-dir "$out/hello"
hello="$out/hello/wasm32-wasip2/release/peer_hello.wasm"
(cd "$root" && cargo xtask build-examples >/dev/null && cargo build --quiet --release -p theater --bin theater)
theater="$root/target/release/theater"

work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() {
    for _ in $(seq 1 200); do
        curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0
        sleep 0.05
    done
    echo "nothing answered on port $1" >&2; exit 1
}
# CPU seconds (user + system) the process has used so far.
cpu_of() { awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$1/stat"; }

# measure NAME PID URL: one wrk run; prints "NAME req/s cpu-us/request"
measure() {
    local name=$1 pid=$2 url=$3
    wrk -t1 -c"$conns" -d2s "$url" >/dev/null # warm up
    local before after report
    before=$(cpu_of "$pid")
    report=$(wrk -t1 -c"$conns" -d"$duration" "$url")
    after=$(cpu_of "$pid")
    if echo "$report" | grep -q 'Non-2xx'; then
        echo "$name answered non-2xx:" >&2; echo "$report" >&2; exit 1
    fi
    local n rps
    n=$(echo "$report" | awk '/requests in/ { print $1 }')
    rps=$(echo "$report" | awk '/Requests\/sec/ { print $2 }')
    awk -v name="$name" -v rps="$rps" -v n="$n" -v b="$before" -v a="$after" \
        'BEGIN { printf "%-52s %10.0f req/s %8.1f us CPU/request\n", name, rps, (a - b) * 1e6 / n }'
    echo "$rps" > "$work/$name.rps"
}

# theater run, as a newcomer runs it (default data dir in a fresh directory), on a free port.
port=$(free_port)
mkdir -p "$work/theater"
sed -e "s|^addr = .*|addr = \"127.0.0.1:$port\"|" \
    -e "s|^component = .*|component = \"$root/target/examples/todo.wasm\"|" \
    "$root/examples/todo/todo.toml" > "$work/theater/todo.toml"
(cd "$work/theater" && exec "$theater" run todo.toml >"$work/theater.log" 2>&1) &
pids+=($!)
wait_for "$port"
for title in one two three; do
    curl -sf -o /dev/null -X POST -d "{\"title\": \"$title\"}" "http://127.0.0.1:$port/todos"
done
theater_pid=${pids[-1]} # the subshell exec-ed into theater
measure "theater-run-todo-GET" "$theater_pid" "http://127.0.0.1:$port/todos/2"

for mode in reuse fresh; do
    port=$(free_port)
    args=(serve --addr "127.0.0.1:$port" -Scli)
    [ "$mode" = reuse ] && args+=(--max-instance-reuse-count=1000000000)
    "$wasmtime" "${args[@]}" "$hello" >"$work/wasmtime-$mode.log" 2>&1 &
    pid=$!
    pids+=("$pid")
    wait_for "$port"
    measure "wasmtime-serve-$mode" "$pid" "http://127.0.0.1:$port/"
    kill "$pid"
done

awk -v t="$(cat "$work/theater-run-todo-GET.rps")" -v r="$(cat "$work/wasmtime-serve-reuse.rps")" \
    -v f="$(cat "$work/wasmtime-serve-fresh.rps")" 'BEGIN {
    printf "theater run vs wasmtime serve reusing one instance: %.2f (target >= 1.0)\n", t / r
    printf "theater run vs wasmtime serve, an instance per request: %.2f (target >= 2)\n", t / f
}'
