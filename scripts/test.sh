#!/usr/bin/env bash
# The whole test suite, as CI runs it. Installs what the tests need when it
# is missing (sqlite3 for independent checks, moto as a real S3, aiosmtpd as
# a real SMTP server, the Python MCP SDK as a real MCP client, LibreOffice
# Calc and openpyxl to open CSV exports as spreadsheets, Node and Chromium
# with playwright-core and axe-core for the web console), then runs
# formatting, lints and every test.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v sqlite3 >/dev/null || need_apt+=(sqlite3)
# LibreOffice Calc: the readable CSV is checked the way its readers open it.
command -v soffice >/dev/null || need_apt+=(libreoffice-calc-nogui)
# The web console is tested in real headless Chromium, driven from Node.
command -v node >/dev/null || need_apt+=(nodejs)
command -v npm >/dev/null || need_apt+=(npm)
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "test.sh: please install: ${need_apt[*]}" >&2
  fi
fi

# Real servers for the tests, from PyPI: moto (S3) and aiosmtpd (SMTP).
pip_install() {
  python3 -m pip install --quiet "$@" 2>/dev/null \
    || python3 -m pip install --quiet --user --break-system-packages "$@"
}
if ! command -v moto_server >/dev/null || ! python3 -c 'import moto.server, flask' 2>/dev/null; then
  pip_install 'moto[server]'
fi
python3 -c 'import aiosmtpd' 2>/dev/null || pip_install aiosmtpd
python3 -c 'import openpyxl' 2>/dev/null || pip_install openpyxl
# The official MCP client (2.x) drives the MCP server in tests/mcp.rs.
python3 -c 'import mcp' 2>/dev/null || pip_install 'mcp>=2,<3'
export PATH="$HOME/.local/bin:$PATH"

# playwright-core and axe-core at the versions package-lock.json pins.
[ -d tests/console/node_modules/playwright-core ] \
  || (cd tests/console && npm ci --no-audit --no-fund --loglevel=error)

cargo fmt --all -- --check
cargo clippy --all-targets --quiet -- -D warnings
# Public items are documented and every doc link resolves (issue 15).
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --quiet
cargo test --all-targets --no-fail-fast
