#!/usr/bin/env bash
# Headless Chromium for the report tests (Debian's `chromium` package).
#
#   scripts/chromium.sh install    apt-get install chromium when missing (idempotent)
#   scripts/chromium.sh path       print the chromium binary's path (non-zero exit when missing)
#   scripts/chromium.sh version    print its version
#
# The tests drive it themselves (tests/support/chromium.py: headless, no
# sandbox, a fresh profile, DevTools on loopback). Errors are one line on
# stderr and a non-zero exit.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
usage() { usage_lines 2 6; }

binary() {
  local b
  for b in chromium chromium-browser; do
    if command -v "$b" >/dev/null 2>&1; then command -v "$b"; return 0; fi
  done
  return 1
}

cmd_version() {
  local b
  b="$(binary)" || die "chromium not found; run: $0 install"
  "$b" --version 2>/dev/null | head -n1
}

cmd_install() {
  if binary >/dev/null; then
    echo "chromium already installed: $(cmd_version)"
    return 0
  fi
  serialise_install
  command -v apt-get >/dev/null 2>&1 || die "chromium is not installed and apt-get is not available; install Chromium (chromium on PATH) by hand"
  local rc=0
  {
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium
  } >&2 || rc=$?
  [ "$rc" -eq 0 ] || die "apt-get install chromium failed (exit $rc); is the network or a package mirror reachable?"
  binary >/dev/null || die "apt-get installed chromium but it is not on PATH"
  echo "chromium installed: $(cmd_version)"
}

main() {
  [ "$#" -ge 1 ] || { usage >&2; exit 2; }
  local sub="$1"; shift
  [ "$#" -eq 0 ] || die "usage: $0 $sub (takes no arguments)"
  case "$sub" in
    install) cmd_install ;;
    path) binary || die "chromium not found; run: $0 install" ;;
    version) cmd_version ;;
    -h|--help|help) usage ;;
    *) usage >&2; die "unknown subcommand '$sub'" ;;
  esac
}

main "$@"
