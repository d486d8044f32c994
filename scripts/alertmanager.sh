#!/usr/bin/env bash
# A real Alertmanager for arbd, on loopback only, owned by the caller.
#
#   scripts/alertmanager.sh install                    apt-get install prometheus-alertmanager when missing (idempotent)
#   scripts/alertmanager.sh check [CONFIG]             amtool check-config (default configs/alertmanager.yml)
#   scripts/alertmanager.sh render CONFIG OUT          write CONFIG with its `# env: NAME` values filled in (mode 0600)
#   scripts/alertmanager.sh start PORT CONFIG DATADIR  render into DATADIR, run it on 127.0.0.1:PORT, print its pid
#   scripts/alertmanager.sh stop PID                   SIGTERM (SIGKILL after 10 s) that Alertmanager, by pid
#
# Secrets never live in CONFIG: a line `KEY: VALUE  # env: NAME` takes NAME's
# value from the environment (ARBD_TELEGRAM_BOT_TOKEN, ARBD_TELEGRAM_CHAT_ID,
# ARBD_ALERT_WEBHOOK_URL); an unset NAME is an error. `start` renders into
# DATADIR/alertmanager.yml (directory 0700, file 0600), runs the binary with
# web on 127.0.0.1:PORT and clustering off (no gossip port), and logs to
# DATADIR/alertmanager.log. `install` never starts or enables the distro's
# service. Errors are one line on stderr and a non-zero exit; no error prints
# a secret.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
READY_TIMEOUT_S="${ALERTMANAGER_READY_TIMEOUT_S:-30}"
PACKAGE=prometheus-alertmanager

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
usage() { usage_lines 2 9; }

# Debian names the binary prometheus-alertmanager; upstream builds call it alertmanager.
am_binary() { command -v prometheus-alertmanager 2>/dev/null || command -v alertmanager 2>/dev/null || true; }
have_binaries() { [ -n "$(am_binary)" ] && command -v amtool >/dev/null 2>&1; }

cmd_install() {
  if have_binaries; then
    echo "alertmanager already installed: $("$(am_binary)" --version 2>&1 | head -n1)"
    return 0
  fi
  serialise_install
  command -v apt-get >/dev/null 2>&1 || die "alertmanager is not installed and apt-get is not available; install Alertmanager (alertmanager and amtool on PATH) by hand"
  # Keep the package's postinst from starting the distro service (policy-rc.d
  # is honoured by invoke-rc.d and deb-systemd-invoke). Only remove our own.
  local policy=/usr/sbin/policy-rc.d created_policy=0
  if [ ! -e "$policy" ]; then
    as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
    created_policy=1
  fi
  local rc=0
  {
    as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -q &&
    as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q \
      --no-install-recommends "$PACKAGE"
  } >&2 || rc=$?
  if [ "$created_policy" -eq 1 ]; then
    as_root rm -f "$policy"
  fi
  [ "$rc" -eq 0 ] || die "apt-get install $PACKAGE failed (exit $rc); is the network or a package mirror reachable?"
  # The package enables its service for the next boot, where it would listen on
  # every interface (web :9093, cluster :9094): switch that off too.
  # (Debian's update-rc.d disables the systemd unit along with the SysV links.)
  if command -v update-rc.d >/dev/null 2>&1; then
    as_root update-rc.d "$PACKAGE" disable >/dev/null 2>&1 || true
  elif command -v systemctl >/dev/null 2>&1; then
    as_root systemctl disable "$PACKAGE.service" >/dev/null 2>&1 || true
  fi
  have_binaries || die "apt-get installed $PACKAGE but its alertmanager binary or amtool is not on PATH"
  echo "alertmanager installed: $("$(am_binary)" --version 2>&1 | head -n1)"
}

cmd_check() {
  [ "$#" -le 1 ] || die "usage: $0 check [CONFIG]"
  command -v amtool >/dev/null 2>&1 || die "amtool not found; run: $0 install"
  local config="${1:-$ROOT/configs/alertmanager.yml}"
  [ -f "$config" ] || die "no such config: $config"
  amtool check-config "$config"
}

# The value NAME holds, checked for the key it fills; dies naming NAME (never the value).
env_value() {
  local key="$1" name="$2" value
  value="${!name-}"
  [ -n "$value" ] || die "$name is not set; the config takes its $key from it (see configs/alertmanager.yml)"
  case "$key" in
    chat_id) [[ "$value" =~ ^-?[0-9]+$ ]] || die "$name must be a Telegram chat id (an integer such as -1001234567890)" ;;
    bot_token) [[ "$value" =~ ^[0-9]+:[A-Za-z0-9_-]+$ ]] || die "$name does not look like a Telegram bot token (<digits>:<letters, digits, _ or ->)" ;;
    url|api_url) [[ "$value" =~ ^https?://[^[:space:]\'\"#]+$ ]] || die "$name must be an http(s) URL without spaces, quotes or '#'" ;;
    *) [[ "$value" =~ ^[^[:space:]\'\"#]+$ ]] || die "$name must be one word without quotes or '#'" ;;
  esac
  printf '%s' "$value"
}

# CONFIG with every `KEY: VALUE  # env: NAME` line's VALUE taken from NAME, to OUT (0600).
render() {
  local src="$1" out="$2" line key name value
  [ -f "$src" ] || die "no such config: $src"
  local re='^([[:space:]]*(-[[:space:]]+)?)([A-Za-z_]+):[[:space:]].*#[[:space:]]*env:[[:space:]]*([A-Za-z_][A-Za-z0-9_]*)[[:space:]]*$'
  local tmp="$out.tmp.$$"
  (
    umask 077
    : >"$tmp"
    while IFS= read -r line || [ -n "$line" ]; do
      if [[ "$line" =~ $re ]]; then
        key="${BASH_REMATCH[3]}" name="${BASH_REMATCH[4]}"
        value="$(env_value "$key" "$name")" || exit 1
        if [ "$key" = chat_id ]; then
          printf '%s%s: %s\n' "${BASH_REMATCH[1]}" "$key" "$value"
        else
          printf "%s%s: '%s'\n" "${BASH_REMATCH[1]}" "$key" "$value"
        fi
      else
        printf '%s\n' "$line"
      fi
    done <"$src" >"$tmp"
  ) || { rm -f "$tmp"; exit 1; }
  chmod 600 "$tmp"
  mv -f "$tmp" "$out"
}

cmd_render() {
  [ "$#" -eq 2 ] || die "usage: $0 render CONFIG OUT"
  render "$1" "$2"
}

is_alertmanager_pid() {
  local exe
  exe="$(readlink "/proc/$1/exe" 2>/dev/null)" || return 1
  case "${exe##*/}" in
    alertmanager|prometheus-alertmanager) return 0 ;;
    *) return 1 ;;
  esac
}

cmd_start() {
  [ "$#" -eq 3 ] || die "usage: $0 start PORT CONFIG DATADIR"
  local port="$1" config="$2" datadir="$3" binary
  [[ "$port" =~ ^[0-9]+$ ]] && [ "$port" -ge 1 ] && [ "$port" -le 65535 ] || die "PORT must be 1..65535, got '$port'"
  [ -f "$config" ] || die "no such config: $config"
  binary="$(am_binary)"
  [ -n "$binary" ] || die "alertmanager not found; run: $0 install"
  command -v amtool >/dev/null 2>&1 || die "amtool not found; run: $0 install"
  [ "$(http_status "$port" /-/ready)" = "000" ] || die "127.0.0.1:$port is already in use"
  mkdir -p "$datadir"
  chmod 700 "$datadir"
  local rendered="$datadir/alertmanager.yml" log="$datadir/alertmanager.log"
  render "$config" "$rendered"
  local out
  out="$(amtool check-config "$rendered" 2>&1)" || die "the rendered config is invalid: $(echo "$out" | grep -m1 -i 'fail\|error')"
  # setsid: its own session, so a terminal's signals do not reach it; the
  # caller owns it through the printed pid. An empty cluster address turns
  # clustering (and its gossip listener) off: one instance, nothing off loopback.
  setsid "$binary" \
    --config.file="$rendered" \
    --storage.path="$datadir" \
    --web.listen-address="127.0.0.1:$port" \
    --web.external-url="http://127.0.0.1:$port/" \
    --cluster.listen-address= \
    </dev/null >>"$log" 2>&1 &
  local pid=$!
  wait_ready alertmanager "$port" "$pid" "$log"
  echo "$pid"
}

cmd_stop() { stop_pid "an alertmanager" is_alertmanager_pid "$@"; }

main() {
  [ "$#" -ge 1 ] || { usage >&2; exit 2; }
  local sub="$1"; shift
  case "$sub" in
    install) [ "$#" -eq 0 ] || die "usage: $0 install"; cmd_install ;;
    check) cmd_check "$@" ;;
    render) cmd_render "$@" ;;
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    -h|--help|help) usage ;;
    *) usage >&2; die "unknown subcommand '$sub'" ;;
  esac
}

main "$@"
