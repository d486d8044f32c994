"""Drive a real ``live_trading`` daemon against the embedded exchange through
a fault schedule, recording what the invariants need.

While the schedule runs, two observer threads record:

- :class:`StatusPoller` - ``status`` every ~50 ms over the control socket
  (actors with pids and states, trading state, fail-closed, exposure, feed
  ages) and, every couple of seconds, the exchange's ``/_sim/orders`` (the
  simulator dies with the daemon, so the last copy is kept; the final one is
  taken explicitly before the daemon stops);
- :class:`BusMonitor` - a SUB on the bus's ``bus_out``: every
  ``TradingState`` the guard publishes (its fail-closed and halt windows,
  stamped by the guard's own clock), every order event, the arrival time of
  every quote per venue.

Faults are applied by pid taken from ``status`` (and checked to be a child
of this daemon), never by name. Every wait has a deadline.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import signal
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import zmq

from messages import BookTop, DecodeError, Opportunity, OrderEvent, TradingState, WarmState, decode
from supervisors.control import ControlClient, ControlError
from tests.chaos.schedule import Fault
from tests.support.daemon import DaemonRun, Stillness, deep_merge, free_port, wait_until
from venues.sim.config import TEST_KEYS

# Shipped supervision defaults are used on purpose (liveness 3 s, intensity
# 5 in 30 s): the chaos suite tests the configuration operators run.
MAX_EXPOSURE_KRW = 500_000.0
SIM_SETS = ("sim.premium_vol_pct=1.5", "sim.jump_prob=0.5", "sim.jump_pct=1.0")


# Run directories made here; the test's verdict decides whether they stay.
SCRATCH: list[str] = []


def chaos_config() -> dict[str, Any]:
    return {
        "mode": "live_trading",
        "venues": {"source": "sim", "symbols": ["BTC", "ETH", "XRP"]},
        "metrics": {"port": free_port()},
        "live_trading": {"enabled": True, "dry_run_scale": 1.0, "allowed_symbols": ["BTC", "ETH", "XRP"],
                         "max_notional_per_trade": 500.0, "max_daily_loss": 1000.0},
        # The restored baseline is checked against the live median premium: the
        # tolerance must exceed the market's own excursions around its baseline
        # (sim.premium_vol_pct=1.5 below: a stationary spread of ~1.5 points).
        "baseline": {"time_constant_s": 120, "warmup_s": 5, "warmup_samples": 20,
                     "restore_tolerance_pct": 4.0},
        "strategy": {"cooldown_s": 3, "max_hold_s": 60},
        "position_adv": {"max_exposure_krw": MAX_EXPOSURE_KRW},
    }


def key_env() -> dict[str, str]:
    """The embedded exchange's test keys, as an operator would export them."""
    return {"UPBIT_ACCESS_KEY": TEST_KEYS["upbit"]["apiKey"], "UPBIT_SECRET_KEY": TEST_KEYS["upbit"]["secret"],
            "BINANCE_API_KEY": TEST_KEYS["binance"]["apiKey"],
            "BINANCE_API_SECRET": TEST_KEYS["binance"]["secret"]}


# -- observations --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sample:
    t_ns: int
    trading_state: str
    fail_closed: bool
    reasons: tuple[str, ...]
    actors: dict[str, tuple[int | None, str]]  # name -> (pid, state)
    exposure_krw: float
    orders_open: int
    orders_sent: int
    feed_age: dict[str, float]  # venue -> oldest quote age (s)
    hb_age: dict[str, float] = field(default_factory=dict)  # actor -> age of its last heartbeat (s)
    naked_krw: float = 0.0  # naked exposure (a broken hedge not yet repaired)
    answered_ns: int = 0  # when the reply arrived (t_ns is when it was asked); 0 = unknown


@dataclass(frozen=True, slots=True)
class StateObs:
    ts_ns: int  # the guard's stamp
    state: str
    fail_closed: bool
    reasons: tuple[str, ...]


@dataclass
class FaultRecord:
    fault: Fault
    start_ns: int = 0
    end_ns: int = 0
    pid: int | None = None
    note: str = ""


def now_ns() -> int:
    return time.time_ns()


class SimAdmin:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def _req(self, method: str, path: str, body: Any = None, timeout: float = 5.0) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read().decode())

    def orders(self) -> list[dict[str, Any]]:
        return self._req("GET", "/_sim/orders", timeout=10.0)

    def fault(self, **body: Any) -> Any:
        return self._req("POST", "/_sim/fault", body)

    def clear(self) -> Any:
        return self._req("DELETE", "/_sim/fault")

    def market(self, **body: Any) -> Any:
        return self._req("POST", "/_sim/market", body)


class StatusPoller(threading.Thread):
    def __init__(self, control_ep: str, admin: SimAdmin, interval_s: float = 0.05,
                 orders_every_s: float = 2.0) -> None:
        super().__init__(name="chaos-status", daemon=True)
        self.client = ControlClient(control_ep, timeout_s=2.0)
        self.admin = admin
        self.interval_s = interval_s
        self.orders_every_s = orders_every_s
        self.samples: list[Sample] = []
        self.failures = 0
        self.sim_orders: list[dict[str, Any]] = []
        self.sim_orders_at_ns = 0
        self._halt = threading.Event()
        self._lock = threading.Lock()

    def run(self) -> None:
        next_orders = 0.0
        while not self._halt.is_set():
            s = self.poll_once()
            # An escalation stops the daemon (and the exchange with it) within
            # seconds: keep the exchange's record fresh from then on.
            failed = s is not None and any(st == "failed" for _, st in s.actors.values())
            now = time.monotonic()
            if failed:
                next_orders = min(next_orders, now)
            if now >= next_orders:
                next_orders = now + (0.25 if failed else self.orders_every_s)
                self.fetch_orders()
            self._halt.wait(self.interval_s)

    def poll_once(self) -> Sample | None:
        t = now_ns()
        try:
            reply = self.client.call("status")
        except (ControlError, zmq.ZMQError, DecodeError):
            self.failures += 1
            return None
        if not reply.ok:
            self.failures += 1
            return None
        st = reply.result
        ages: dict[str, float] = {}
        for f in st.get("feeds", []):
            if f.get("age_s") is not None:
                ages[f["venue"]] = max(ages.get(f["venue"], 0.0), float(f["age_s"]))
        s = Sample(t, st["trading_state"], bool(st["fail_closed"]), tuple(st["fail_closed_reasons"]),
                   {a["name"]: (a["pid"], a["state"]) for a in st["actors"]}, float(st.get("exposure_krw", 0.0)),
                   int(st["orders"]["open"]), int(st["orders"].get("sent", 0)), ages,
                   {a["name"]: float(a["heartbeat_age_s"]) for a in st["actors"]
                    if a.get("heartbeat_age_s") is not None},
                   float(st.get("naked_exposure_krw") or 0.0), now_ns())
        with self._lock:
            self.samples.append(s)
        return s

    def fetch_orders(self) -> bool:
        t = now_ns()
        try:
            orders = self.admin.orders()
        except (OSError, ValueError, urllib.error.URLError):
            return False
        with self._lock:
            self.sim_orders, self.sim_orders_at_ns = orders, t
        return True

    def latest(self) -> Sample | None:
        with self._lock:
            return self.samples[-1] if self.samples else None

    def stop(self) -> None:
        self._halt.set()
        self.join(5)


class BusMonitor(threading.Thread):
    TOPICS = (b"state", b"order.", b"book.", b"opp.", b"warm.")

    def __init__(self, bus_out: str) -> None:
        super().__init__(name="chaos-bus", daemon=True)
        self.endpoint = bus_out
        self.states: list[StateObs] = []
        self.order_events: list[tuple[int, OrderEvent]] = []
        self.books: dict[str, list[int]] = {"upbit": [], "binance": []}
        # The first opportunity each engine incarnation published per symbol
        # (arrival time), and every WarmState (arrival, actor, incarnation, warm).
        self.first_opp: dict[tuple[int, str], int] = {}
        self.warm: list[tuple[int, str, int, bool]] = []
        self.decode_errors = 0
        self.sent = threading.Event()
        self.ready = threading.Event()
        self._halt = threading.Event()

    def run(self) -> None:
        ctx = zmq.Context()
        s = ctx.socket(zmq.SUB)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.RCVHWM, 0)
        s.connect(self.endpoint)
        for t in self.TOPICS:
            s.setsockopt(zmq.SUBSCRIBE, t)
        self.ready.set()
        try:
            while not self._halt.is_set():
                if not s.poll(100):
                    continue
                for _ in range(1000):
                    try:
                        parts = s.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    self._on(parts)
        finally:
            ctx.destroy(linger=0)

    def _on(self, parts: list[bytes]) -> None:
        t = now_ns()
        if len(parts) != 2:
            self.decode_errors += 1
            return
        try:
            env = decode(parts[1])
        except DecodeError:
            self.decode_errors += 1
            return
        msg = env.msg
        if type(msg) is BookTop:
            self.books.setdefault(msg.venue, []).append(t)
        elif type(msg) is TradingState:
            self.states.append(StateObs(msg.ts_ns, msg.state, msg.fail_closed, msg.reasons))
        elif type(msg) is Opportunity:
            self.first_opp.setdefault((env.incarnation, msg.symbol), t)
        elif type(msg) is WarmState:
            self.warm.append((t, msg.actor, msg.incarnation, msg.warm))
        elif type(msg) is OrderEvent:
            self.order_events.append((t, msg))
            if msg.status == "sent":
                self.sent.set()

    def stop(self) -> None:
        self._halt.set()
        self.join(5)


# -- the run -----------------------------------------------------------------------------


@dataclass
class ChaosResult:
    seed: int
    schedule: list[Fault]
    records: list[FaultRecord] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    states: list[StateObs] = field(default_factory=list)
    sim_orders: list[dict[str, Any]] = field(default_factory=list)
    sim_orders_at_ns: int = 0
    exit_code: int | None = None
    escalated: bool = False
    restart_log: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)  # the event log, every line
    leaked: list[str] = field(default_factory=list)
    ledger_path: Path | None = None
    halted_at_ns: int = 0
    schedule_start_ns: int = 0
    end_ns: int = 0
    books: dict[str, list[int]] = field(default_factory=dict)
    status_failures: int = 0
    settle_notes: list[str] = field(default_factory=list)
    first_opp: dict[tuple[int, str], int] = field(default_factory=dict)
    warm: list[tuple[int, str, int, bool]] = field(default_factory=list)
    undisturbed_ns: tuple[int, int] = (0, 0)  # a stretch of trading before the schedule, for comparison


class ChaosRun:
    """One daemon, one schedule. Use as a context manager; ``execute()`` does it all."""

    def __init__(self, seed: int, schedule: list[Fault], *, root: Path | None = None,
                 max_runtime_s: float = 900.0, log: Any = print, undisturbed_s: float = 0.0,
                 tail_s: float = 0.0, overrides: dict[str, Any] | None = None) -> None:
        self.undisturbed_s = undisturbed_s  # trading undisturbed before the schedule (a yardstick)
        self.tail_s = tail_s  # ... and after its last fault, before the run settles and halts
        self.seed = seed
        self.schedule = schedule
        self._tmp = None
        if root is None:
            self._tmp = tempfile.mkdtemp(prefix="arbd-chaos-", dir="/tmp")
            SCRATCH.append(self._tmp)  # removed once the test passed (tests/chaos/conftest.py)
            root = Path(self._tmp)
        self.run = DaemonRun(root / "d", deep_merge(chaos_config(), overrides or {}))
        self.run.env.update(key_env())
        self.max_runtime_s = max_runtime_s
        self.log = log
        self.result = ChaosResult(seed, schedule)
        self.poller: StatusPoller | None = None
        self.bus: BusMonitor | None = None
        self.admin: SimAdmin | None = None
        self._background: list[threading.Thread] = []

    def __enter__(self) -> ChaosRun:
        return self

    def __exit__(self, *exc: object) -> None:
        for t in (self.poller, self.bus):
            if t is not None and t.is_alive():
                t.stop()
        leaked = self.run.cleanup()
        self.result.leaked.extend(leaked)

    # -- phases ---------------------------------------------------------------------------
    def start(self, *, wait_orders: bool = True) -> None:
        sets = [a for s in SIM_SETS for a in ("--set", s)]
        self.run.start(*sets, timeout=60, max_runtime_s=self.max_runtime_s)
        sim = wait_until(lambda: json.loads(self.run.run.sim_file.read_text()), 20, "sim.json")
        self.admin = SimAdmin(sim["admin"])
        ep = self.run.endpoints()
        self.bus = BusMonitor(ep.bus_out)
        self.bus.start()
        self.bus.ready.wait(5)
        self.poller = StatusPoller(ep.control, self.admin)
        self.poller.start()
        self.run.call("arm", confirm="live_trading")
        if wait_orders:
            wait_until(lambda: (s := self.poller.latest()) is not None and s.orders_sent >= 2, 60,
                       "the first orders of the armed daemon")

    def apply(self, fault: Fault) -> FaultRecord:
        """Apply one fault. A SIGSTOP lasts a while: it runs on a thread of its
        own so that the schedule keeps its pace (and its restart budget)."""
        rec = FaultRecord(fault, start_ns=now_ns())
        self.result.records.append(rec)
        if fault.kind == "sigstop":
            t = threading.Thread(target=self._apply, args=(rec,), name="chaos-sigstop", daemon=True)
            self._background.append(t)
            t.start()
        else:
            self._apply(rec)
        return rec

    def _apply(self, rec: FaultRecord) -> None:
        fault = rec.fault
        try:
            getattr(self, f"_fault_{fault.kind}")(fault, rec)
        except (OSError, urllib.error.URLError, AssertionError) as e:
            rec.note = f"could not apply: {type(e).__name__}: {e}"
        rec.end_ns = rec.end_ns or now_ns()
        self.log(f"  {fault.describe():<44} pid={rec.pid} {rec.note}")

    def execute(self) -> ChaosResult:
        """Start, arm, run the schedule, settle, halt, collect, stop."""
        self.start()
        if self.undisturbed_s > 0:  # trading undisturbed: the yardstick for the rate under chaos
            a = now_ns()
            threading.Event().wait(self.undisturbed_s)  # a measured stretch, not a synchronisation
            self.result.undisturbed_ns = (a, now_ns())
        t0 = time.monotonic()
        self.result.schedule_start_ns = now_ns()
        for fault in self.schedule:
            delay = t0 + fault.at_s - time.monotonic()
            if delay > 0:
                threading.Event().wait(delay)  # pacing the schedule, not synchronising
            if not self.run.alive():
                self.result.settle_notes.append(f"daemon exited before {fault.describe()}")
                break
            self.apply(fault)
        if self.tail_s > 0 and self.run.alive():
            threading.Event().wait(self.tail_s)  # trading after the last fault, as measured time
        self.finish()
        return self.result

    def finish(self) -> None:
        r = self.result
        assert self.poller is not None and self.bus is not None and self.admin is not None
        for t in self._background:  # SIGSTOPs still running end (SIGCONT) first
            t.join(30)
        if self.run.alive():
            with contextlib.suppress(OSError, urllib.error.URLError):
                self.admin.clear()
            self._settle()
        if self.run.alive():
            with contextlib.suppress(ControlError, OSError):
                self.run.call("halt", reason="chaos: end of schedule")
                r.halted_at_ns = now_ns()
            # Orders decided before the halt finish, and a broken hedge is still
            # repaired (reducing orders pass while halted); nothing new may start.
            if not self._still_after_halt():
                r.settle_notes.append("trading did not go still within 20 s of the halt")
            if not self.poller.fetch_orders():
                r.settle_notes.append("could not fetch /_sim/orders before stopping")
        self.poller.stop()
        self.bus.stop()
        r.end_ns = now_ns()
        if self.run.alive():
            r.exit_code = self.run.stop(timeout=30)
        else:
            r.exit_code = self.run.proc.returncode if self.run.proc else None
        r.leaked = self.run.cleanup()
        r.samples = list(self.poller.samples)
        r.states = list(self.bus.states)
        r.books = {v: list(ts) for v, ts in self.bus.books.items()}
        r.first_opp, r.warm = dict(self.bus.first_opp), list(self.bus.warm)
        r.sim_orders, r.sim_orders_at_ns = self.poller.sim_orders, self.poller.sim_orders_at_ns
        r.status_failures = self.poller.failures
        r.restart_log = self.run.restart_log()
        for path in sorted((self.run.run.logs_dir / "events").glob("*.jsonl")):
            for line in path.read_text().splitlines():
                with contextlib.suppress(ValueError):
                    r.events.append(json.loads(line))
        r.escalated = any(x["event"] == "escalate" for x in r.restart_log)
        r.ledger_path = self.run.run.ledger_path
        with contextlib.suppress(OSError, pickle.PicklingError):  # for a post-mortem of a failed run
            (self.run.root / "chaos_result.pickle").write_bytes(pickle.dumps(r))

    def _still_after_halt(self, timeout_s: float = 20.0, still_s: float = 1.0, naked_still_s: float = 5.0) -> bool:
        """True once nothing is open and neither arbd's sent count nor the
        exchange's orders have moved for ``still_s`` (``naked_still_s`` while
        a hedge is still naked: its repair passes while halted and may take a
        moment). The exchange is read last, so it must hold every order the
        ledger will: an order decided just before the halt may not show as
        open yet, and a repair may follow a hedge that expires after it."""
        assert self.poller is not None and self.admin is not None
        deadline = time.monotonic() + timeout_s
        stillness = Stillness(still_s, naked_still_s)
        while time.monotonic() < deadline:
            s = self.poller.poll_once()
            try:
                seen = tuple(sorted((o.get("client_order_id"), o["status"]) for o in self.admin.orders()))
            except (OSError, ValueError, urllib.error.URLError):
                seen = None
            look = None if s is None or seen is None or s.orders_open else (s.orders_sent, seen)
            if stillness.still(look, s is not None and bool(s.naked_krw)):
                return True
            time.sleep(0.1)
        return False

    def _settle(self) -> None:
        """After the last fault: every actor running under a pid that was not
        faulted, every order resolved (bounded)."""
        assert self.poller is not None
        faulted = {rec.pid for rec in self.result.records
                   if rec.pid and (rec.fault.kind in ("kill", "kill_midsend") or "killed" in rec.note)}
        try:
            wait_until(lambda: (s := self.poller.poll_once()) is not None
                       and all(st == "running" and pid not in faulted for pid, st in s.actors.values()), 40,
                       "every actor to run again after the schedule")
        except AssertionError as e:
            self.result.settle_notes.append(str(e))
        try:
            wait_until(lambda: (s := self.poller.poll_once()) is not None and s.orders_open == 0, 30,
                       "unresolved orders to be reconciled")
        except AssertionError as e:
            self.result.settle_notes.append(str(e))

    # -- faults ------------------------------------------------------------------------------
    def _pid_of(self, actor: str, timeout: float = 20.0) -> int:
        """The running pid of ``actor`` from status, checked to be a live child
        of this daemon that we have not faulted already (status may still show
        a process killed a moment ago as running)."""
        killed = {r.pid for r in self.result.records
                  if r.pid and (r.fault.kind in ("kill", "kill_midsend") or "killed" in r.note)}

        def probe() -> int | None:
            s = self.poller.poll_once() if self.poller else None
            if s is None or actor not in s.actors:
                return None
            pid, state = s.actors[actor]
            if state != "running" or not pid or pid in killed:
                return None
            try:
                p = psutil.Process(pid)
                if p.ppid() != self.run.pid or p.status() == psutil.STATUS_ZOMBIE:
                    return None
            except psutil.Error:
                return None
            return pid

        return wait_until(probe, timeout, f"{actor} running (to fault it)", interval=0.05)

    def _kill(self, fault: Fault, rec: FaultRecord, actor: str) -> None:
        pid = self._pid_of(actor)
        rec.pid = pid
        rec.start_ns = now_ns()
        os.kill(pid, signal.SIGKILL)

    def _fault_kill(self, fault: Fault, rec: FaultRecord) -> None:
        self._kill(fault, rec, fault.target)

    def _fault_kill_midsend(self, fault: Fault, rec: FaultRecord) -> None:
        assert self.admin is not None and self.bus is not None
        self._pid_of("executor")  # running before we start waiting for an order
        # Hold the venues' REST replies back: an order sent now is at the venue
        # well before the executor could hear about it.
        for venue in ("upbit", "binance"):
            self.admin.fault(venue=venue, kind="delay", seconds=12.0, delay_s=0.4)
        self.bus.sent.clear()
        got = self.bus.sent.wait(10.0)
        pid = self._pid_of("executor", timeout=5.0)  # the one that just sent, not a stale entry
        rec.pid = pid
        rec.start_ns = now_ns()
        os.kill(pid, signal.SIGKILL)
        rec.note = "after a 'sent' order event" if got else "no order within 10s; killed anyway"
        for venue in ("upbit", "binance"):  # replies flow again for the reconcile
            self.admin.fault(venue=venue, kind="delay", seconds=0.01, delay_s=0.0)

    def _fault_sigstop(self, fault: Fault, rec: FaultRecord) -> None:
        pid = self._pid_of(fault.target)
        proc = psutil.Process(pid)
        created = proc.create_time()
        rec.pid = pid
        rec.start_ns = now_ns()
        os.kill(pid, signal.SIGSTOP)
        try:
            threading.Event().wait(fault.duration_s)  # the fault's length, not a synchronisation
        finally:
            try:
                if psutil.Process(pid).create_time() == created:
                    os.kill(pid, signal.SIGCONT)
                    rec.note = "continued"
            except (psutil.NoSuchProcess, ProcessLookupError):
                rec.note = "killed by the supervisor while stopped"
        rec.end_ns = now_ns()

    def _fault_ws_drop(self, fault: Fault, rec: FaultRecord) -> None:
        assert self.admin is not None
        out = self.admin.fault(venue=fault.target, kind="drop", seconds=fault.duration_s)
        rec.note = f"dropped {out.get('dropped')}"
        rec.end_ns = rec.start_ns + int(fault.duration_s * 1e9)

    def _http(self, fault: Fault, rec: FaultRecord) -> None:
        assert self.admin is not None
        self.admin.fault(venue=fault.target, kind="http_error", seconds=fault.duration_s, status=fault.status)
        rec.end_ns = rec.start_ns + int(fault.duration_s * 1e9)

    _fault_http_5xx = _http
    _fault_http_429 = _http
