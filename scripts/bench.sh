#!/usr/bin/env bash
# Export benchmark: audit-export vs the sqlite3 shell over the same rows and
# columns, side by side in one run (hyperfine medians), plus peak RSS.
#
#   scripts/bench.sh [ROWS...]        default: 1000000 5000000
#
# Seeds one organization over one year (so one export covers every row) into
# bench-out/<rows>/ (kept between runs), then for each size measures:
#   ours CSV (raw, redaction on: the default)      vs  sqlite3 -csv
#   ours CSV with [export] threads = 1 (the one-core path)
#   ours CSV, readable profile
#   ours JSONL (default threads, and threads = 1)  vs  sqlite3 -json
#   the bare scan: sqlite3 reading the same rows and columns in key order
#   and only summing their lengths (the floor for one core)
# With BASELINE_BIN=/path/to/an/older/audit-export, that binary's raw CSV
# runs in the same hyperfine run (before/after figures side by side).
# Needs: hyperfine, sqlite3 (apt-get install -y hyperfine sqlite3).
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@"); [ ${#sizes[@]} -gt 0 ] || sizes=(1000000 5000000)
runs=${BENCH_RUNS:-3}
source scripts/bench-lib.sh
need hyperfine sqlite3
cargo build --release --quiet
bin=$PWD/target/release/audit-export
out=$PWD/bench-out
mkdir -p "$out"

# The same 17 columns, rows and order as our raw export.
cols="id, strftime('%Y-%m-%dT%H:%M:%fZ', occurred_at / 1000.0, 'unixepoch') AS occurred_at, organization_id, stream, action, actor_type, actor_id, actor_name, actor_email, target_type, target_id, target_name, ip_address, user_agent, request_id, changed_data, details"
where="organization_id = 'org_1' AND occurred_at >= 1735689600000 AND occurred_at < 1767225600000 ORDER BY occurred_at, id"

rss() { /usr/bin/time -f '%M' "$@" 2>&1 >/dev/null | tail -n 1; }

printf '\n| rows | what | median s | ratio vs sqlite3 | peak RSS MiB |\n|---:|---|---:|---:|---:|\n' > "$out/summary.md"
for rows in "${sizes[@]}"; do
  dir=$out/$rows
  seeded "$dir" "$rows" --orgs 1 --seed 42
  db=$dir/audit-export.db
  common="--data-dir $dir export --org org_1 --from 2025-01-01 --to 2025-12-31"
  baseline=()
  if [ -n "${BASELINE_BIN:-}" ]; then
    # The same seed by the older binary, in a database of its own version.
    bdir=$out/$rows-baseline
    if [ ! -f "$bdir/.seeded" ]; then
      rm -rf "$bdir"
      "$BASELINE_BIN" --data-dir "$bdir" seed --rows "$rows" --orgs 1 --seed 42
      touch "$bdir/.seeded"
    fi
    baseline=(-n baseline-csv "$BASELINE_BIN --data-dir $bdir export --org org_1 --from 2025-01-01 --to 2025-12-31 --format csv --output $out/base.csv")
  fi
  scan="SELECT sum(length(id) + length(occurred_at) + length(organization_id) + length(stream) + length(action) + length(actor_type) + length(actor_id) + length(actor_name) + length(actor_email) + length(target_type) + length(target_id) + length(target_name) + length(ip_address) + length(user_agent) + length(request_id) + length(changed_data) + length(details)) FROM audit_logs WHERE $where"
  # Every output is removed, and the removal synced, before each run:
  # replacing the previous run's 300-500 MB file frees its blocks inside the
  # timed command, and on a file system mounted with `discard` (ext4 here)
  # the next journal commit — our final fsync — waits for the device to
  # discard them: 40-90 ms, up to 0.3 s after several removals. Neither is
  # the export's work.
  hyperfine -w 1 -r "$runs" --export-json "$out/h-$rows.json" \
    --prepare "rm -f $out/ours.csv $out/ours1.csv $out/base.csv $out/ours-r.csv $out/sqlite.csv $out/ours.jsonl $out/ours1.jsonl $out/sqlite.json; sync" \
    -n ours-csv "$bin $common --format csv --output $out/ours.csv" \
    -n ours-csv-t1 "AUDIT_EXPORT_EXPORT_THREADS=1 $bin $common --format csv --output $out/ours1.csv" \
    "${baseline[@]}" \
    -n ours-readable "$bin $common --format csv --csv-profile readable --output $out/ours-r.csv" \
    -n sqlite3-csv "sqlite3 -csv -header $db \"SELECT $cols FROM audit_logs WHERE $where\" > $out/sqlite.csv" \
    -n ours-jsonl "$bin $common --format jsonl --output $out/ours.jsonl" \
    -n ours-jsonl-t1 "AUDIT_EXPORT_EXPORT_THREADS=1 $bin $common --format jsonl --output $out/ours1.jsonl" \
    -n sqlite3-json "sqlite3 -json $db \"SELECT $cols FROM audit_logs WHERE $where\" > $out/sqlite.json" \
    -n sqlite3-scan "sqlite3 $db \"$scan\" > /dev/null"
  r_csv=$(rss "$bin" $common --format csv --output "$out/ours.csv")
  r_read=$(rss "$bin" $common --format csv --csv-profile readable --output "$out/ours-r.csv")
  r_jsonl=$(rss "$bin" $common --format jsonl --output "$out/ours.jsonl")
  python3 - "$out/h-$rows.json" "$rows" "$r_csv" "$r_jsonl" "$r_read" >> "$out/summary.md" <<'PY'
import json, sys
res = {r["command"]: r["median"] for r in json.load(open(sys.argv[1]))["results"]}
rows, r_csv, r_jsonl, r_read = sys.argv[2], int(sys.argv[3]) / 1024, int(sys.argv[4]) / 1024, int(sys.argv[5]) / 1024
n = f"{int(rows):,}"
scan = res['sqlite3-scan']
print(f"| {n} | ours CSV (raw, redacted) | {res['ours-csv']:.2f} | {res['ours-csv']/res['sqlite3-csv']:.2f}x ({res['ours-csv']/res['ours-csv-t1']:.2f}x one thread, {res['ours-csv']/scan:.2f}x the bare scan) | {r_csv:.1f} |")
print(f"| {n} | ours CSV, threads = 1 | {res['ours-csv-t1']:.2f} | {res['ours-csv-t1']/res['sqlite3-csv']:.2f}x ({res['ours-csv-t1']/scan:.2f}x the bare scan) | |")
if "baseline-csv" in res:
    print(f"| {n} | baseline CSV (BASELINE_BIN) | {res['baseline-csv']:.2f} | {res['baseline-csv']/res['sqlite3-csv']:.2f}x | |")
print(f"| {n} | ours CSV readable | {res['ours-readable']:.2f} | {res['ours-readable']/res['sqlite3-csv']:.2f}x ({res['ours-readable']/res['ours-csv']:.2f}x raw) | {r_read:.1f} |")
print(f"| {n} | sqlite3 -csv | {res['sqlite3-csv']:.2f} | 1.00x | |")
print(f"| {n} | ours JSONL | {res['ours-jsonl']:.2f} | {res['ours-jsonl']/res['sqlite3-json']:.2f}x ({res['ours-jsonl']/res['ours-jsonl-t1']:.2f}x one thread, {res['ours-jsonl']/scan:.2f}x the bare scan) | {r_jsonl:.1f} |")
print(f"| {n} | ours JSONL, threads = 1 | {res['ours-jsonl-t1']:.2f} | {res['ours-jsonl-t1']/res['sqlite3-json']:.2f}x | |")
print(f"| {n} | sqlite3 -json | {res['sqlite3-json']:.2f} | 1.00x | |")
print(f"| {n} | bare sqlite3 scan of the same rows and columns | {scan:.2f} | | |")
PY
  rm -f "$out"/ours.* "$out"/sqlite.*
done
cat "$out/summary.md"
