#!/usr/bin/env bash
# Ingest benchmark: `audit-export ingest` of the same 1M (or ROWS) events as
# JSONL, JSON array and raw CSV, against `sqlite3 .import` of the same rows
# as CSV into the same table and indexes (schema.sql), side by side in one
# run (hyperfine medians, each into a fresh data dir), plus peak RSS.
#
#   scripts/bench-ingest.sh [ROWS]        default: 1000000
#
# The input files are exports of the seeded bench-out/<rows>/ database
# (scripts/bench.sh seeds it the same way), with their ids. For .import the
# NULL JSON columns are written as the JSON text `null`: the shell imports
# an empty field as '' (not NULL), which the json_valid CHECK refuses.
# Needs: hyperfine, sqlite3 (apt-get install -y hyperfine sqlite3).
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-1000000}
runs=${BENCH_RUNS:-3}
source scripts/bench-lib.sh
need hyperfine sqlite3
cargo build --release --quiet
bin=$PWD/target/release/audit-export
out=$PWD/bench-out
src=$out/$rows
mkdir -p "$out"
seeded "$src" "$rows" --orgs 1 --seed 42
in=$out/ingest-$rows
mkdir -p "$in"
exp="--data-dir $src export --org org_1 --from 2025-01-01 --to 2025-12-31 --no-redact"
[ -f "$in/events.jsonl" ] || "$bin" $exp --format jsonl --output "$in/events.jsonl"
[ -f "$in/events.json" ] || "$bin" $exp --format json --output "$in/events.json"
[ -f "$in/events.csv" ] || "$bin" $exp --format csv --output "$in/events.csv"
[ -f "$in/import.csv" ] || sqlite3 -csv "$src/audit-export.db" \
  "SELECT id, organization_id, occurred_at, stream, action, actor_type, actor_id, actor_name, actor_email, target_type, target_id, target_name, ip_address, user_agent, request_id, coalesce(changed_data, 'null'), coalesce(details, 'null') FROM audit_logs ORDER BY occurred_at, id" > "$in/import.csv"

# Synced: on a file system mounted with `discard`, the next journal commit
# would otherwise wait for the previous run's freed blocks.
fresh="rm -rf $in/db && mkdir -p $in/db && sync"
hyperfine -w 0 -r "$runs" --export-json "$in/h.json" --prepare "$fresh" \
  -n ours-jsonl "$bin --data-dir $in/db ingest $in/events.jsonl" \
  -n ours-json-array "$bin --data-dir $in/db ingest $in/events.json" \
  -n ours-csv "$bin --data-dir $in/db ingest $in/events.csv" \
  -n sqlite3-import "sqlite3 $in/db/plain.db < schema.sql && sqlite3 $in/db/plain.db '.import --csv $in/import.csv audit_logs'"
rss() { eval "$fresh"; /usr/bin/time -f '%M' "$@" 2>&1 >/dev/null | tail -n 1; }
r_jsonl=$(rss "$bin" --data-dir "$in/db" ingest "$in/events.jsonl")
r_csv=$(rss "$bin" --data-dir "$in/db" ingest "$in/events.csv")
python3 - "$in/h.json" "$rows" "$r_jsonl" "$r_csv" <<'PY'
import json, sys
res = {r["command"]: r["median"] for r in json.load(open(sys.argv[1]))["results"]}
rows = int(sys.argv[2]); r_jsonl, r_csv = int(sys.argv[3]) / 1024, int(sys.argv[4]) / 1024
imp = res["sqlite3-import"]
print("\n| rows | what | median s | events/s | vs sqlite3 .import | peak RSS MiB |\n|---:|---|---:|---:|---:|---:|")
for name, label, rss in [("ours-jsonl", "ingest JSONL", f"{r_jsonl:.1f}"), ("ours-json-array", "ingest JSON array", ""),
                         ("ours-csv", "ingest CSV", f"{r_csv:.1f}"), ("sqlite3-import", "sqlite3 .import (CSV)", "")]:
    t = res[name]
    print(f"| {rows:,} | {label} | {t:.2f} | {rows / t:,.0f} | {t / imp:.2f}x | {rss} |")
PY
