#!/usr/bin/env bash
# A dev server for working on the console: a fresh data directory with the
# fixtures (2,400 events of acme, globex, initech, 2025-07-01..2026-01-31),
# three users of acme (admin, compliance, viewer), one sample schedule, and
# the console served from console/ on disk (edit, reload, no rebuild).
#
#   tests/console/dev-server.sh              # runs until Ctrl-C
#   tests/console/dev-server.sh --detach     # starts it and returns
#
# Prints BASE_URL, the three tokens, SERVER_BIN, DATA_DIR and SERVER_PID as
# `export` lines (also written to $WORK_DIR/env), ready for e2e.mjs:
#   eval "$(tests/console/dev-server.sh --detach)"; node tests/console/e2e.mjs
#
# SERVER_BIN: the binary (default: target/release, then target/debug, then
# audit-export on PATH). WORK_DIR: where data goes (default: a temp dir).
# Large-export behaviour is made quick to reach: 500 rows or more run as a
# background job (the fixtures' acme range is 1,100 events, a month ~140).
# Background exports are held to 10,000 rows a second, so a job of the
# 150,000 bulk events runs long enough, on any machine, for the checks that
# watch, restart and cancel a running job.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
detach=0
[[ "${1:-}" == "--detach" ]] && detach=1

bin=${SERVER_BIN:-}
if [[ -z "$bin" ]]; then
  for candidate in "$root/target/release/audit-export" "$root/target/debug/audit-export"; do
    [[ -x "$candidate" ]] && { bin=$candidate; break; }
  done
fi
bin=${bin:-$(command -v audit-export || true)}
[[ -x "$bin" ]] || { echo "dev-server: no audit-export binary; set SERVER_BIN" >&2; exit 1; }

work=${WORK_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/audit-console.XXXXXX")}
data=$work/data
flows=$work/workflows
mkdir -p "$work" "$flows"

"$bin" --data-dir "$data" ingest "$root/fixtures/audit_events.jsonl" >&2
admin=$("$bin" --data-dir "$data" users add --org acme --email ada@acme.example --name "Ada Admin" --role admin 2>/dev/null)
compliance=$("$bin" --data-dir "$data" users add --org acme --email cy@acme.example --name "Cy Compliance" --role compliance 2>/dev/null)
viewer=$("$bin" --data-dir "$data" users add --org acme --email vi@acme.example --name "Vi Viewer" --role viewer 2>/dev/null)

cat >"$flows/daily.toml" <<'TOML'
# Yesterday's events of acme, every morning at 06:00 Paris time.
name = "daily"
schedule = "0 6 * * *"
timezone = "Europe/Paris"
organization = "acme"
range = "previous_day"
TOML

log=$work/server.log
start_server() {
  env "$@" \
    AUDIT_EXPORT_HTTP_SYNC_THRESHOLD=500 \
    AUDIT_EXPORT_JOBS_POLL_INTERVAL_MS=100 \
    AUDIT_EXPORT_JOBS_COMPRESS=never \
    AUDIT_EXPORT_JOBS_ROWS_PER_SECOND=10000 \
    "$bin" --data-dir "$data" --workflows "$flows" serve --listen 127.0.0.1:0 >"$work/server.out" 2>"$log" &
  pid=$!
  url=
  for _ in $(seq 100); do
    url=$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' "$log" | head -n1)
    [[ -n "$url" ]] && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# CONSOLE_FROM_DISK=0 serves the copy built into the binary (what run.sh
# tests); the default serves console/ from disk, for editing.
if [[ "${CONSOLE_FROM_DISK:-1}" == 1 ]]; then
  start_server AUDIT_EXPORT_CONSOLE_DIR="$root/console" || { cat "$log" >&2; exit 1; }
else
  start_server || { cat "$log" >&2; exit 1; }
fi

cat >"$work/env" <<ENV
export BASE_URL=$url
export ADMIN_TOKEN=$admin
export COMPLIANCE_TOKEN=$compliance
export VIEWER_TOKEN=$viewer
export SERVER_BIN=$bin
export DATA_DIR=$data
export SERVER_PID=$pid
ENV
cat "$work/env"
{
  echo "# console: $url/  (admin ada@acme.example, compliance cy@acme.example, viewer vi@acme.example)"
  echo "# server log: $log; stop with: kill $pid"
} >&2

if [[ $detach == 1 ]]; then
  exit 0
fi
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; exit 0' INT TERM
wait "$pid"
