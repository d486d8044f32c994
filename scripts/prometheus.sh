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

die() { echo "prometheus.sh: $*" >&2; exit 1; }
usage() { sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

have_binaries() { command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo -n "$@" || die "needs root to run '$*' (sudo -n failed)"
  else
    die "needs root to run '$*' (not root and no sudo)"
  fi
}

cmd_install() {
  if have_binaries; then
    echo "prometheus already installed: $(prometheus --version 2>&1 | head -n1)"
    return 0
  fi
  # One installer at a time (parallel test workers install side by side, and
  # apt, dpkg and /usr/sbin/policy-rc.d are shared): run again under a lock,
  # which checks again what is installed.
  if [ -z "${ARBD_INSTALL_LOCKED:-}" ] && command -v flock >/dev/null 2>&1; then
    exec env ARBD_INSTALL_LOCKED=1 flock /tmp/arbd-install.lock "$0" install
  fi
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

# One HTTP GET over bash's /dev/tcp (no curl on a clean machine); prints the status code.
http_status() {
  local port="$1" path="$2" line=""
  { exec 3<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null || { echo 000; return 0; }
  printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$path" >&3
  IFS= read -r -t 2 line <&3 || true
  exec 3<&- 3>&-
  line="${line#HTTP/* }"
  echo "${line%% *}"
}

# Exited but not yet reaped by its parent (counts as stopped).
is_zombie() { [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = "Z" ]; }

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
  local deadline=$((SECONDS + READY_TIMEOUT_S))
  while [ "$(http_status "$port" /-/ready)" != "200" ]; do
    if ! kill -0 "$pid" 2>/dev/null || is_zombie "$pid"; then
      wait "$pid" 2>/dev/null || true
      die "prometheus exited during startup; last log lines: $(tail -n 5 "$log" | tr '\n' ' ')"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      kill -KILL "$pid" 2>/dev/null || true
      die "prometheus not ready on 127.0.0.1:$port within ${READY_TIMEOUT_S}s (killed pid $pid); see $log"
    fi
    sleep 0.1
  done
  echo "$pid"
}

cmd_stop() {
  [ "$#" -eq 1 ] || die "usage: $0 stop PID"
  local pid="$1"
  [[ "$pid" =~ ^[0-9]+$ ]] || die "PID must be a number, got '$pid'"
  if ! kill -0 "$pid" 2>/dev/null || is_zombie "$pid"; then
    echo "pid $pid is not running"
    return 0
  fi
  is_prometheus_pid "$pid" || die "pid $pid is not a prometheus process; not stopping it"
  kill -TERM "$pid"
  local i
  for i in $(seq 100); do
    if ! kill -0 "$pid" 2>/dev/null || is_zombie "$pid"; then
      echo "stopped $pid"
      return 0
    fi
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  echo "killed $pid (no exit within 10 s of SIGTERM)"
}

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
