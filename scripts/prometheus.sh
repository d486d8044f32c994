#!/usr/bin/env bash
# A real Prometheus for arbd, on loopback only, owned by the caller.
#
#   scripts/prometheus.sh install                    apt-get install prometheus when missing (idempotent)
#   scripts/prometheus.sh check [CONFIG [RULES...]]  promtool check config + check rules
#                                                    (default configs/prometheus.yml, configs/alerts.yml)
#   scripts/prometheus.sh start PORT CONFIG DATADIR  run it on 127.0.0.1:PORT, wait until ready, print its pid
#   scripts/prometheus.sh stop PID                   SIGTERM (SIGKILL after 10 s) that Prometheus, by pid
#
# `install` never starts the distro's service: a policy-rc.d that refuses
# service starts is in place for the duration of the install. `start` runs the
# binary directly with the caller's config and data directory; its log is
# DATADIR/prometheus.log. Errors are one line on stderr and a non-zero exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
READY_TIMEOUT_S="${PROMETHEUS_READY_TIMEOUT_S:-30}"

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
usage() { usage_lines 2 9; }

have_binaries() { command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; }

cmd_install() {
  if have_binaries; then
    echo "prometheus already installed: $(prometheus --version 2>&1 | head -n1)"
    return 0
  fi
  serialise_install
  command -v apt-get >/dev/null 2>&1 || die "prometheus is not installed and apt-get is not available; install Prometheus (prometheus and promtool on PATH) by hand"
  # Keep the package's postinst from starting the distro service (policy-rc.d
  # is honoured by invoke-rc.d and deb-systemd-invoke). Only remove our own.
  local policy=/usr/sbin/policy-rc.d created_policy=0
  if [ ! -e "$policy" ]; then
    as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
    created_policy=1
  fi
  local rc=0
  {
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus
  } >&2 || rc=$?
  if [ "$created_policy" -eq 1 ]; then
    as_root rm -f "$policy"
  fi
  [ "$rc" -eq 0 ] || die "apt-get install prometheus failed (exit $rc); is the network or a package mirror reachable?"
  have_binaries || die "apt-get installed prometheus but prometheus/promtool are not on PATH"
  echo "prometheus installed: $(prometheus --version 2>&1 | head -n1)"
}

cmd_check() {
  command -v promtool >/dev/null 2>&1 || die "promtool not found; run: $0 install"
  local config="${1:-$ROOT/configs/prometheus.yml}"
  [ "$#" -gt 0 ] && shift
  local rules=("$@")
  [ "${#rules[@]}" -gt 0 ] || rules=("$ROOT/configs/alerts.yml")
  [ -f "$config" ] || die "no such config: $config"
  promtool check config "$config"
  promtool check rules "${rules[@]}"
}

is_prometheus_pid() {
  local pid="$1"
  [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = "prometheus" ]
}

cmd_start() {
  [ "$#" -eq 3 ] || die "usage: $0 start PORT CONFIG DATADIR"
  local port="$1" config="$2" datadir="$3"
  [[ "$port" =~ ^[0-9]+$ ]] && [ "$port" -ge 1 ] && [ "$port" -le 65535 ] || die "PORT must be 1..65535, got '$port'"
  [ -f "$config" ] || die "no such config: $config"
  command -v prometheus >/dev/null 2>&1 || die "prometheus not found; run: $0 install"
  [ "$(http_status "$port" /-/ready)" = "000" ] || die "127.0.0.1:$port is already in use"
  mkdir -p "$datadir"
  local log="$datadir/prometheus.log"
  # setsid: its own session, so a terminal's signals do not reach it; the
  # caller owns it through the printed pid.
  setsid prometheus \
    --config.file="$config" \
    --storage.tsdb.path="$datadir" \
    --web.listen-address="127.0.0.1:$port" \
    --storage.tsdb.retention.time=1d \
    </dev/null >>"$log" 2>&1 &
  local pid=$!
  wait_ready prometheus "$port" "$pid" "$log"
  echo "$pid"
}

cmd_stop() { stop_pid "a prometheus" is_prometheus_pid "$@"; }

main() {
  [ "$#" -ge 1 ] || { usage >&2; exit 2; }
  local sub="$1"; shift
  case "$sub" in
    install) [ "$#" -eq 0 ] || die "usage: $0 install"; cmd_install ;;
    check) cmd_check "$@" ;;
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    -h|--help|help) usage ;;
    *) usage >&2; die "unknown subcommand '$sub'" ;;
  esac
}

main "$@"
