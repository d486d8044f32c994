"""The control channel: a registry of named commands (circus style) and a
small client. Requests are ``Command`` messages, replies ``Reply`` messages,
both through the one codec; the server turns every failure into a reply."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import zmq

from messages import Command, Reply, decode, encode
from messages.codec import DecodeError

if TYPE_CHECKING:
    from supervisors.daemon import Daemon


class ControlError(Exception):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class Forward:
    """Answer later: ask an actor, then reply with what it says (or the fallback)."""

    actor: str
    command: Command
    timeout_s: float = 5.0
    on_timeout: Callable[[], Any] | None = None


@dataclass(frozen=True)
class ControlCommand:
    name: str
    help: str
    execute: Callable[[Daemon, dict[str, Any]], Any]
    args: tuple[str, ...] = field(default_factory=tuple)


def _status(d: Daemon, args: dict[str, Any]) -> Any:
    return d.status()


def _halt(d: Daemon, args: dict[str, Any]) -> Any:
    reason = str(args.get("reason") or "operator halt")
    return Forward("guard", Command(command="halt", args={"reason": reason}),
                   on_timeout=lambda: d.halt_without_guard(reason))


def _arm(d: Daemon, args: dict[str, Any]) -> Any:
    confirm = str(args.get("confirm") or "")
    return Forward("guard", Command(command="arm", args={"confirm": confirm}))


def _restart(d: Daemon, args: dict[str, Any]) -> Any:
    actor = args.get("actor")
    if not isinstance(actor, str) or not actor:
        raise ControlError("bad_args", "restart needs an actor name")
    return d.restart_actor(actor, "operator request", graceful=False)


def _shutdown(d: Daemon, args: dict[str, Any]) -> Any:
    d.request_shutdown("operator stop")
    return {"stopping": True}


def _ping(d: Daemon, args: dict[str, Any]) -> Any:
    return {"pong": True, "pid": d.pid}


COMMANDS: dict[str, ControlCommand] = {c.name: c for c in (
    ControlCommand("status", "Show actors, feeds, premium, trading state, guard, orders, PnL.", _status),
    ControlCommand("halt", "Halt trading now; persists across restarts until `arm`.", _halt, ("reason",)),
    ControlCommand("arm", "Arm trading (live_trading needs --confirm live_trading).", _arm, ("confirm",)),
    ControlCommand("restart", "Restart one actor (kill and let the supervisor restart it).", _restart, ("actor",)),
    ControlCommand("shutdown", "Stop the daemon in order.", _shutdown),
    ControlCommand("ping", "Check that the daemon answers.", _ping),
)}


def parse_request(frame: bytes) -> Command:
    try:
        env = decode(frame)
    except DecodeError as e:
        raise ControlError("bad_request", f"undecodable request: {e}") from None
    if type(env.msg) is not Command:
        raise ControlError("bad_request", f"expected a command, got {type(env.msg).__name__}")
    return env.msg


def reply_frame(request_id: str, ok: bool, result: Any = None, code: str = "", reason: str = "") -> bytes:
    return encode(Reply(request_id=request_id, ok=ok, result=result, error_code=code,
                        error_reason=reason), "supervisor", 0, 0)


class ControlClient:
    def __init__(self, endpoint: str, timeout_s: float = 5.0) -> None:
        self.endpoint = endpoint
        self.timeout_s = timeout_s

    def call(self, command: str, **args: Any) -> Reply:
        ctx = zmq.Context.instance()
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        try:
            s.connect(self.endpoint)
            req = Command(command=command, args=args)
            s.send(encode(req, "arbctl", 0, 0))
            deadline_ms = int(self.timeout_s * 1000)
            while s.poll(deadline_ms):
                env = decode(s.recv())
                if type(env.msg) is Reply and env.msg.request_id in (req.id, ""):
                    return env.msg
            raise ControlError("timeout", f"no reply from arbd within {self.timeout_s:g}s")
        finally:
            with contextlib.suppress(Exception):
                s.close(linger=0)
