#!/usr/bin/env bash
# Runs the console's end-to-end checks from scratch: installs the two npm
# packages if needed, starts a dev server (dev-server.sh), runs e2e.mjs
# against it, stops the server. Exit status: e2e.mjs's.
#
#   SERVER_BIN=/path/to/audit-export tests/console/run.sh
#
# Needs Node 20+ and Chromium (/usr/bin/chromium: apt-get install chromium).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
[[ -d node_modules/playwright-core && -d node_modules/axe-core ]] || npm ci --no-audit --no-fund >&2

work=$(mktemp -d "${TMPDIR:-/tmp}/audit-console-e2e.XXXXXX")
# The console the binary embeds, as users get it.
CONSOLE_FROM_DISK=${CONSOLE_FROM_DISK:-0} WORK_DIR=$work ./dev-server.sh --detach >/dev/null
# shellcheck disable=SC1091
source "$work/env"
trap 'kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; rm -rf "$work"' EXIT
export ARTIFACTS_DIR=${ARTIFACTS_DIR:-$here/artifacts}
node e2e.mjs
