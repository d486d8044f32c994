#!/usr/bin/env bash
# What the multihost tests need to make "hosts" of network namespaces.
#
#   scripts/netns.sh install   apt-get install iproute2 when ip or tc is missing (idempotent)
#   scripts/netns.sh check     can this machine make a namespace? prints "netns ok" and
#                              "netem ok" or "netem unavailable: ..." (a kernel without
#                              sch_netem: links then run without an added delay)
#
# The tests themselves make and remove their namespaces (tests/support/hosts.py).
# Errors are one line on stderr and a non-zero exit.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
usage() { usage_lines 2 8; }

have_tools() { command -v ip >/dev/null 2>&1 && command -v tc >/dev/null 2>&1; }

cmd_install() {
  if have_tools; then
    echo "iproute2 already installed: $(ip -V 2>&1 | head -n1)"
    return 0
  fi
  serialise_install
  [ "$(id -u)" -eq 0 ] || die "needs root to install iproute2 (and to make network namespaces)"
  command -v apt-get >/dev/null 2>&1 || die "ip/tc are missing and apt-get is not available; install iproute2 by hand"
  {
    env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
    env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends iproute2
  } >&2 || die "apt-get install iproute2 failed; is a package mirror reachable?"
  have_tools || die "apt-get installed iproute2 but ip/tc are not on PATH"
  echo "iproute2 installed: $(ip -V 2>&1 | head -n1)"
}

cmd_check() {
  have_tools || die "ip/tc not found; run: $0 install"
  [ "$(id -u)" -eq 0 ] || die "network namespaces need root"
  CHECK_NS="arbd-check-$$"
  local ns="$CHECK_NS"
  ip netns add "$ns" || die "ip netns add failed (no network namespace support?)"
  trap 'ip netns del "$CHECK_NS" 2>/dev/null || true' EXIT
  echo "netns ok"
  local err
  if err=$(ip -n "$ns" link set lo up 2>&1 && tc -n "$ns" qdisc add dev lo root netem delay 1ms 2>&1); then
    echo "netem ok"
  else
    echo "netem unavailable: ${err:-unknown error}"
  fi
}

main() {
  [ "$#" -ge 1 ] || { usage >&2; exit 2; }
  local sub="$1"; shift
  case "$sub" in
    install) cmd_install ;;
    check) cmd_check ;;
    -h|--help|help) usage ;;
    *) usage >&2; die "unknown subcommand '$sub'" ;;
  esac
}

main "$@"
