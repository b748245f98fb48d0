#!/usr/bin/env bash
# Background-job benchmark: a 1,000,000-row async CSV export with
# compression, end to end (enqueue → export to spool with checkpoints → zip →
# store), side by side in one hyperfine run with `sqlite3 -csv | zip` over the
# same rows, and the same job with checkpoints pushed out of the run (to
# price checkpointing). Reports medians and our peak RSS.
#
#   scripts/bench-jobs.sh [ROWS]      default 1000000
# Needs: hyperfine, sqlite3, zip (apt-get install -y hyperfine sqlite3 zip).
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-1000000}
runs=${BENCH_RUNS:-5}
source scripts/bench-lib.sh
need hyperfine sqlite3 zip
cargo build --release --quiet
bin=$PWD/target/release/audit-export
out=$PWD/bench-out
dir=$out/$rows
mkdir -p "$out"
seeded "$dir" "$rows" --orgs 1 --seed 42
db=$dir/audit-export.db
cols="id, strftime('%Y-%m-%dT%H:%M:%fZ', occurred_at / 1000.0, 'unixepoch') AS occurred_at, organization_id, stream, action, actor_type, actor_id, actor_name, actor_email, target_type, target_id, target_name, ip_address, user_agent, request_id, changed_data, details"
where="organization_id = 'org_1' AND occurred_at >= 1735689600000 AND occurred_at < 1767225600000 ORDER BY occurred_at, id"
job="$bin --data-dir $dir export --async --org org_1 --from 2025-01-01 --to 2025-12-31 --format csv --compress always --requester bench >/dev/null 2>&1 && $bin --data-dir $dir worker --drain 2>/dev/null"
# Synced: on a file system mounted with `discard`, the next journal commit
# (the job's first fsync) would otherwise wait for the freed blocks.
clean="rm -rf $dir/exports $dir/spool $out/pipe.zip; sync"
no_cp="AUDIT_EXPORT_JOBS_CHECKPOINT_BYTES=1000000000000 AUDIT_EXPORT_JOBS_CHECKPOINT_INTERVAL_MS=1000000000"

hyperfine -w 1 -r "$runs" --prepare "$clean" --export-json "$out/jobs-$rows.json" \
  -n job "sh -c '$job'" \
  -n job-no-checkpoints "sh -c '$no_cp $job'" \
  -n sqlite3-zip "sqlite3 -csv -header $db \"SELECT $cols FROM audit_logs WHERE $where\" | zip -q -6 $out/pipe.zip -"

# Peak RSS of the worker running one job.
eval "$clean"
"$bin" --data-dir "$dir" export --async --org org_1 --from 2025-01-01 --to 2025-12-31 --format csv --compress always --requester bench >/dev/null 2>&1
/usr/bin/time -f '%M' -o "$out/rss.txt" "$bin" --data-dir "$dir" worker --drain >/dev/null 2>&1
rss=$(tail -n 1 "$out/rss.txt")
size=$(find "$dir/exports" -name '*.zip' -printf '%s\n' | head -n 1)
python3 - "$out/jobs-$rows.json" "$rows" "$rss" "$size" <<'PY'
import json, sys
res = {r["command"]: r["median"] for r in json.load(open(sys.argv[1]))["results"]}
rows, rss, size = int(sys.argv[2]), int(sys.argv[3]) / 1024, int(sys.argv[4]) / 2**20
j, n, p = res["job"], res["job-no-checkpoints"], res["sqlite3-zip"]
print(f"\n| {rows:,} rows, CSV + zip | median s | ratio |")
print("|---|---:|---:|")
print(f"| async job, end to end | {j:.2f} | {j/p:.2f}x vs pipeline |")
print(f"| same job, no mid-run checkpoints | {n:.2f} | checkpoint cost {100*(j-n)/n:+.1f}% |")
print(f"| sqlite3 -csv \\| zip -6 | {p:.2f} | 1.00x |")
print(f"\npeak RSS of the worker: {rss:.1f} MiB; stored zip: {size:.1f} MiB")
PY
eval "$clean"
