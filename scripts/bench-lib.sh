# Shared by the scripts/bench*.sh: sourced, not run.
#
#   need TOOL...            fail with the apt-get line when a tool is missing
#   seeded DIR ROWS [ARGS]  seed DIR once (kept between runs) with $bin
#
# Expects $bin (our release binary) to be set before `seeded` is used.

need() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || {
      echo "$(basename "$0"): $tool is missing (apt-get install -y $*)" >&2
      exit 1
    }
  done
}

seeded() {
  local dir=$1 rows=$2
  shift 2
  if [ ! -f "$dir/.seeded" ]; then
    rm -rf "$dir"
    "$bin" --data-dir "$dir" seed --rows "$rows" "$@"
    touch "$dir/.seeded"
  fi
}
