#!/usr/bin/env bash
# HTTP benchmark: (1) a 10,000-row synchronous CSV export over HTTP, time to
# first byte and total, median of 20 requests; (2) 50 concurrent status
# polls while a 365,000-row job runs. Needs curl and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v curl >/dev/null || { echo "bench-http: curl is missing (apt-get install -y curl)" >&2; exit 1; }
cargo build --release --quiet
bin=$PWD/target/release/audit-export
dir=$PWD/bench-out/http
if [ ! -f "$dir/.seeded" ]; then
  rm -rf "$dir"
  # 1,000 events a day over 2025: ten days are exactly 10,000 rows.
  "$bin" --data-dir "$dir" seed --rows 365000 --orgs 1 --seed 7
  touch "$dir/.seeded"
fi
token=$("$bin" --data-dir "$dir" users add --org org_1 --email "bench-$RANDOM$RANDOM@example.com" --name Bench --role admin 2>/dev/null)
log=$(mktemp)
AUDIT_EXPORT_JOBS_COMPRESS=never "$bin" --data-dir "$dir" serve --listen 127.0.0.1:0 2>"$log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 100); do grep -q "listening on" "$log" && break; sleep 0.1; done
base=$(sed -n 's/^listening on //p' "$log" | head -n 1)
auth="Authorization: Bearer $token"

sync_body='{"format":"csv","mode":"sync","filters":{"from":"2025-01-01","to":"2025-01-10"}}'
curl -s -o /dev/null -H "$auth" -d "$sync_body" "$base/api/v1/exports"   # warm-up
for _ in $(seq 20); do
  curl -s -o /dev/null -w '%{http_code} %{size_download} %{time_starttransfer} %{time_total}\n' \
    -H "$auth" -H 'Content-Type: application/json' -d "$sync_body" "$base/api/v1/exports"
done > "$dir/sync.txt"

job=$(curl -s -H "$auth" -d '{"format":"csv","mode":"async","filters":{"from":"2025-01-01","to":"2025-12-31"}}' "$base/api/v1/exports" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
seq 50 | xargs -P 50 -I{} curl -s -o /dev/null -w '%{http_code} %{time_total}\n' -H "$auth" "$base/api/v1/exports/$job" > "$dir/polls.txt"
state=$(curl -s -H "$auth" "$base/api/v1/exports/$job" | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')

python3 - "$dir/sync.txt" "$dir/polls.txt" "$state" <<'PY'
import statistics as st, sys
rows = [l.split() for l in open(sys.argv[1])]
assert all(r[0] == "200" for r in rows), rows
ttfb = [float(r[2]) * 1000 for r in rows]; total = [float(r[3]) * 1000 for r in rows]
polls = sorted(float(l.split()[1]) * 1000 for l in open(sys.argv[2]))
codes = {l.split()[0] for l in open(sys.argv[2])}
print(f"sync CSV export, 10,000 rows ({int(rows[0][1]):,} bytes), 20 requests:")
print(f"  time to first byte: median {st.median(ttfb):.1f} ms (min {min(ttfb):.1f}, max {max(ttfb):.1f})")
print(f"  total:              median {st.median(total):.1f} ms (min {min(total):.1f}, max {max(total):.1f})")
print(f"50 concurrent status polls during a 365,000-row job (codes {sorted(codes)}; job state afterwards: {sys.argv[3]}):")
print(f"  median {st.median(polls):.1f} ms, p95 {polls[int(len(polls) * 0.95) - 1]:.1f} ms, max {polls[-1]:.1f} ms")
PY
