# Shared by the service scripts (prometheus.sh, alertmanager.sh, chromium.sh,
# netns.sh); sourced, never run. Errors are one line on stderr, prefixed with
# the script's name, and a non-zero exit.

die() { echo "$(basename "$0"): $*" >&2; exit 1; }

# The script's header comment, lines FIRST..LAST, as its usage text.
usage_lines() { sed -n "$1,$2p" "$0" | sed 's/^# \{0,1\}//'; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo -n "$@" || die "needs root to run '$*' (sudo -n failed)"
  else
    die "needs root to run '$*' (not root and no sudo)"
  fi
}

# One installer at a time (parallel test workers install side by side, and
# apt, dpkg and /usr/sbin/policy-rc.d are shared): run `$0 install` again
# under a lock, which checks again what is installed. Returns when already
# under the lock (or when there is no flock to take it with).
serialise_install() {
  if [ -z "${ARBD_INSTALL_LOCKED:-}" ] && command -v flock >/dev/null 2>&1; then
    exec env ARBD_INSTALL_LOCKED=1 flock /tmp/arbd-install.lock "$0" install
  fi
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

# Wait until NAME (pid PID, log LOG) answers 200 on 127.0.0.1:PORT/-/ready
# within READY_TIMEOUT_S; kill it and die otherwise.
wait_ready() {
  local name="$1" port="$2" pid="$3" log="$4"
  local deadline=$((SECONDS + READY_TIMEOUT_S))
  while [ "$(http_status "$port" /-/ready)" != "200" ]; do
    if ! kill -0 "$pid" 2>/dev/null || is_zombie "$pid"; then
      wait "$pid" 2>/dev/null || true
      die "$name exited during startup; last log lines: $(tail -n 5 "$log" | tr '\n' ' ')"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      kill -KILL "$pid" 2>/dev/null || true
      die "$name not ready on 127.0.0.1:$port within ${READY_TIMEOUT_S}s (killed pid $pid); see $log"
    fi
    sleep 0.1
  done
}

# `stop PID` for NAME: SIGTERM (SIGKILL after 10 s), only if IS_OURS PID says
# the pid is that program's.
stop_pid() {
  local name="$1" is_ours="$2"; shift 2
  [ "$#" -eq 1 ] || die "usage: $0 stop PID"
  local pid="$1"
  [[ "$pid" =~ ^[0-9]+$ ]] || die "PID must be a number, got '$pid'"
  if ! kill -0 "$pid" 2>/dev/null || is_zombie "$pid"; then
    echo "pid $pid is not running"
    return 0
  fi
  "$is_ours" "$pid" || die "pid $pid is not $name process; not stopping it"
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
