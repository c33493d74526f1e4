# Where cargo puts what it builds, for the scripts that run the binaries
# (tests/browser/run.sh, tests/interop/run.sh, deploy/nginx/rollout.sh). Cargo decides:
# CARGO_TARGET_DIR (relative to where cargo runs), build.target-dir in a
# .cargo/config.toml, else <workspace>/target; so the scripts ask it, never assume target/.
# Sourced, not run:
#
#   . "$root/tools/target-dir.sh"
#   target="$(cargo_target_dir "$root")"     # or the script stops (set -e), cargo saying why
#   require_bin "$target/debug/basic-service" "cargo build --bin basic-service" || exit 1

# Prints cargo's target directory for the workspace at $1, as cargo sees it from there.
cargo_target_dir() {
  local meta dir
  meta="$(cd "$1" && cargo metadata --quiet --format-version 1 --no-deps)" || {
    echo "cannot ask cargo for its target directory: cargo metadata failed in $1" >&2
    return 1
  }
  if command -v python3 >/dev/null; then
    dir="$(python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])' <<<"$meta")" || dir=""
  elif command -v node >/dev/null; then
    dir="$(node -e 'let s = ""; process.stdin.on("data", (d) => { s += d; }).on("end", () => console.log(JSON.parse(s).target_directory));' <<<"$meta")" || dir=""
  else
    echo "cannot read cargo metadata: python3 or node is needed" >&2
    return 1
  fi
  if [ -z "$dir" ]; then
    echo "cargo metadata in $1 names no target_directory" >&2
    return 1
  fi
  printf '%s\n' "$dir"
}

# Fails with one line naming the path and the command that builds it, unless $1 is an
# executable file. $2: that command.
require_bin() {
  [ -f "$1" ] && [ -x "$1" ] && return 0
  if [ -e "$1" ]; then
    echo "$1 is not an executable file; rebuild it with $2" >&2
  else
    echo "$(basename "$1") binary not found at $1; build it with $2" >&2
  fi
  return 1
}
