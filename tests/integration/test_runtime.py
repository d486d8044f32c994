"""The runtime under real processes: restarts, liveness, intensity, orphans, transports.

Every test runs the real ``bin/arbd`` with test roles (no simulator, no
trading actors) and waits on the supervisor's own view (status, restart
log) with deadlines; nothing sleeps to synchronise.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time

import pytest

from tests.support.daemon import ACTORS, FAST_SUPERVISION, DaemonRun, pid_gone, wait_until


@pytest.fixture(scope="module")
def shared(daemon_module) -> DaemonRun:
    return daemon_module()


@pytest.mark.parametrize("name", ACTORS)
def test_kill_9_of_an_actor_is_followed_by_a_new_heartbeating_process(shared: DaemonRun, name: str) -> None:
    before = shared.wait_all_running()[name]
    old_pid = before["pid"]

    os.kill(old_pid, signal.SIGKILL)
    after = shared.wait_replaced(name, old_pid)

    assert after["restarts"] == before["restarts"] + 1
    assert after["heartbeat_age_s"] is not None and after["heartbeat_age_s"] < FAST_SUPERVISION["liveness_s"]
    assert pid_gone(old_pid)
    log = shared.log_events(name)
    exits = [r for r in log if r["event"] == "exit" and r["pid"] == old_pid]
    assert exits and exits[-1]["signal"] == signal.SIGKILL
    later = log[log.index(exits[-1]):]
    assert [r["event"] for r in later][:3] == ["exit", "restart", "start"]
    assert later[1]["backoff_s"] is not None and later[2]["pid"] == after["pid"]


def test_a_stopped_actor_is_killed_after_its_liveness_limit_and_restarted(shared: DaemonRun) -> None:
    name = "engine"
    old_pid = shared.wait_all_running()[name]["pid"]
    # The supervisor counts from the last heartbeat, which under load may be
    # older than one interval when the stop lands.
    age = shared.actors()[name]["heartbeat_age_s"] or 0.0
    last_hb_at = time.time() - age
    stopped_at = time.time()

    os.kill(old_pid, signal.SIGSTOP)
    try:
        after = shared.wait_replaced(name, old_pid, timeout=10)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(old_pid, signal.SIGCONT)

    kills = [r for r in shared.log_events(name, "kill") if r["pid"] == old_pid]
    assert kills, shared.log_events(name)
    assert "heartbeat timeout" in kills[0]["reason"]
    limit = FAST_SUPERVISION["liveness_s"]
    assert kills[0]["ts"] - last_hb_at >= limit - 0.1, "killed before its liveness limit"
    assert kills[0]["ts"] - stopped_at < limit + 2.0
    assert after["state"] == "running"
    assert pid_gone(old_pid)


def test_a_child_that_crashes_at_start_backs_off_then_escalates_and_the_daemon_exits_non_zero(daemon) -> None:
    intensity = 3
    run = daemon({"supervision": {"intensity": intensity, "period_s": 30.0,
                                  "backoff_initial_s": 0.05, "backoff_max_s": 5.0},
                  "testing": {"role_overrides": {"engine": "tests.support.roles:CrashAtStartActor"}}},
                 wait_running=False)

    code = run.wait_exit(45)

    assert code != 0
    log = run.log_events("engine")
    backoffs = [r["backoff_s"] for r in log if r["event"] == "restart"]
    assert len(backoffs) == intensity
    assert all(b2 > b1 for b1, b2 in zip(backoffs, backoffs[1:], strict=False)), backoffs
    escalations = [r for r in log if r["event"] == "escalate"]
    assert len(escalations) == 1 and "intensity" in escalations[0]["reason"]
    assert log[-1] == escalations[0], "nothing restarts the child after escalation"
    persisted = json.loads(run.run.trading_state_file.read_text())
    assert persisted["state"] == "halted" and "escalation" in persisted["halt_reason"]
    for other in ("guard", "executor", "watchdog"):
        assert run.log_events(other, "stop"), f"{other} was not stopped in order"


def test_kill_9_of_the_supervisor_ends_every_actor_process_within_5_s(daemon) -> None:
    run = daemon()
    pids = [a["pid"] for a in run.wait_all_running().values()]
    assert len(set(pids)) == len(ACTORS)

    os.kill(run.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    run.wait_exit(5)
    wait_until(lambda: all(pid_gone(p) for p in pids), 5.0, "every actor process to end")

    assert time.monotonic() - killed_at < 5.0
    # and nothing else of the run (multiprocessing's resource tracker ends on its own)
    left = run.wait_no_processes(max(0.0, killed_at + 5.0 - time.monotonic()))
    assert left == [], [" ".join(p.cmdline()) for p in left]


@pytest.mark.parametrize("transport", ["inproc", "tcp"])
def test_the_same_runtime_runs_over_another_transport(daemon, transport: str) -> None:
    run = daemon({"bus": {"transport": transport}})

    st = run.status()
    ep = run.endpoints()
    stop = run.arbd("stop", "--run-dir", str(run.run_dir))
    code = run.wait_exit(20)

    assert {a["name"] for a in st["actors"]} == set(ACTORS)
    assert all(a["state"] == "running" for a in st["actors"])
    if transport == "inproc":
        assert ep.bus_in.startswith("inproc://")
        assert {a["pid"] for a in st["actors"]} == {run.pid}
    else:
        assert all(e.startswith("tcp://127.0.0.1:") for e in (ep.bus_in, ep.bus_out, ep.sup, ep.control))
        assert run.pid not in {a["pid"] for a in st["actors"]}
    assert stop.returncode == 0, stop.stderr
    assert code == 0
    stops = {r["actor"] for r in run.log_events(event="stop")}
    assert stops == set(ACTORS)


def test_a_publisher_flooding_the_bus_keeps_heartbeating_and_its_subscriber_loses_nothing(daemon) -> None:
    n = 100_000  # within the default HWMs: a burst, not a stuck consumer
    run = daemon({"testing": {
        "role_overrides": {"engine": "tests.support.roles:StreamPublisher",
                           "watchdog": "tests.support.roles:StreamSubscriber"},
        "bench": {"count": n, "batch": 5000, "idle_s": 5.0}}})
    result = run.run.root / "bench" / "watchdog.json"

    got = wait_until(lambda: result.exists() and json.loads(result.read_text()), 60,
                     "the subscriber's count of the stream")

    assert run.log_events("engine", "kill") == [], run.log_events("engine")
    assert run.actors()["engine"]["restarts"] == 0
    assert got["gaps"] == 0
    assert got["received"] == n


def test_a_handler_that_raises_ends_its_process_and_the_supervisor_restarts_it(daemon) -> None:
    """Whether the host ran the handler on its own thread (an idle actor) or
    the actor's: the process exits non-zero and comes back."""
    import zmq

    from messages import encode
    from tests.support.roles import Probe

    run = daemon({"testing": {"role_overrides": {"watchdog": "tests.support.roles:RaisesOnBoom"}}})
    old_pid = run.actors()["watchdog"]["pid"]
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.connect(run.endpoints().bus_in)
    try:
        seq = 0

        def send(stream: str) -> None:
            nonlocal seq
            seq += 1
            msg = Probe(stream=stream, n=seq)
            pub.send_multipart([msg.topic().encode(), encode(msg, "test", 1, seq)])

        # A PUB drops what it sends before the bus's subscription reaches it:
        # repeat while the old process lives, and never after: a boom that
        # reaches the replacement kills it too, and six deaths in 30 s are
        # (rightly) an escalation that ends the daemon.
        def replaced() -> bool:
            a = run.actors()["watchdog"]
            if a["pid"] == old_pid:
                send("boom")
                time.sleep(0.05)
                return False
            return a["pid"] not in (None, 0) and a["state"] == "running"

        wait_until(replaced, 20, "the watchdog role to be restarted after its handler raised")
    finally:
        pub.close(linger=0)
        ctx.term()
    exits = [e for e in run.log_events("watchdog") if e.get("event") == "exit"]
    assert exits and exits[0].get("exit_code") not in (0, None), exits
    assert run.actors()["watchdog"]["restarts"] >= 1


def test_point_to_point_messages_survive_a_kill_of_the_receiver(daemon) -> None:
    n = 1200
    run = daemon({"bus": {"ack_timeout_s": 0.2}, "testing": {
        "role_overrides": {"engine": "tests.support.roles:P2PSender",
                           "executor": "tests.support.roles:P2PReceiver"},
        # 160 a second: the kill at an eighth leaves the sender ~6.5 s to go,
        # margin for a receiver or a poll slowed by load (a quarter of 600 once was tight).
        "bench": {"peer": "executor", "count": n, "per_tick": 8}}})
    received = run.run.root / "bench" / "received.log"

    def numbers() -> list[int]:
        return [int(x) for x in received.read_text().split()] if received.exists() else []

    old_pid = run.actors()["executor"]["pid"]
    wait_until(lambda: len(numbers()) >= n // 8, 20, "the receiver to have an eighth of the stream")
    os.kill(old_pid, signal.SIGKILL)
    sender_done_at_kill = (run.run.root / "bench" / "engine.json").exists()
    run.wait_replaced("executor", old_pid)
    got = wait_until(lambda: set(numbers()) >= set(range(1, n + 1)) and numbers(), 30,
                     "every message to reach some incarnation of the receiver")

    assert not sender_done_at_kill, "the kill must land mid-stream"
    assert len(numbers()) < n * 2, "retransmission should not flood"
    assert max(got) == n
    assert run.actors()["engine"]["restarts"] == 0


def test_a_run_dir_left_by_a_killed_daemon_starts_again(daemon) -> None:
    run = daemon()
    pids = [a["pid"] for a in run.actors().values()]
    os.kill(run.pid, signal.SIGKILL)
    run.wait_exit(5)
    wait_until(lambda: all(pid_gone(p) for p in pids), 5.0, "every actor process to end")

    run.start()

    st = run.status()
    assert st["pid"] == run.pid
    assert not set(pids) & {a["pid"] for a in st["actors"]}
