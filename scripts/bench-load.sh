#!/usr/bin/env bash
# Load test: CLIENTS (200) concurrent clients for SECONDS (30), each on its
# own keep-alive connection, alternating a synchronous CSV export of one day
# (1,000 rows, ~350 KB) and a status poll, against a release `serve` with
# default settings. Reports requests, errors (must be 0), p50/p95/p99 per
# kind, and the server's peak RSS.
#
#   scripts/bench-load.sh [CLIENTS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
clients=${1:-200}
secs=${2:-30}
cargo build --release --quiet --bin audit-export --example loadgen
bin=$PWD/target/release/audit-export
gen=$PWD/target/release/examples/loadgen
dir=$PWD/bench-out/load
if [ ! -f "$dir/.seeded" ]; then
  rm -rf "$dir"
  # 1,000 events a day over 2025.
  "$bin" --data-dir "$dir" seed --rows 365000 --orgs 1 --seed 7
  touch "$dir/.seeded"
fi
token=$("$bin" --data-dir "$dir" users add --org org_1 --email "load-$RANDOM$RANDOM@example.com" --name Load --role admin 2>/dev/null)
log=$(mktemp)
"$bin" --data-dir "$dir" serve --listen 127.0.0.1:0 2>"$log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 100); do grep -q "listening on" "$log" && break; sleep 0.1; done
addr=$(sed -n 's/^listening on http:\/\///p' "$log" | head -n 1)
body='{"format":"csv","mode":"sync","filters":{"from":"2025-03-01","to":"2025-03-01"}}'
result=$("$gen" "$addr" "$token" "$clients" "$secs" "$body")
rss_kib=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
python3 - "$result" "$rss_kib" "$clients" "$secs" <<'PY'
import json, sys
r, rss, clients, secs = json.loads(sys.argv[1]), int(sys.argv[2]) / 1024, sys.argv[3], int(sys.argv[4])
e, p = r["exports"], r["polls"]
print(f"{clients} clients for {secs} s: {e['count'] + p['count']:,} requests "
      f"({(e['count'] + p['count']) / secs:,.0f}/s), {r['errors']} errors {r['error_kinds'] or ''}")
print("| kind | requests | p50 ms | p95 ms | p99 ms | max ms |")
print("|---|---:|---:|---:|---:|---:|")
for name, s in (("sync export, 1,000 rows", e), ("status poll", p)):
    print(f"| {name} | {s['count']:,} | {s['p50_ms']:.1f} | {s['p95_ms']:.1f} | {s['p99_ms']:.1f} | {s['max_ms']:.1f} |")
print(f"\nserver peak RSS: {rss:.1f} MiB")
sys.exit(1 if r["errors"] else 0)
PY
