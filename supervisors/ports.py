"""Ports picked now for a server that binds later (a child's tcp inbox, a
test's daemon). Picked below the kernel's ephemeral range: a port inside it
can become any outgoing connection's source port (an exchange's HTTPS, a
poller's request) between the pick and the bind, and a child that cannot
bind its endpoint crash-loops until the supervisor escalates. Below the
range only an explicit bind can take it."""

from __future__ import annotations

import random
import socket
from collections.abc import Callable
from pathlib import Path

_SPAN = 12_000  # ports below the ephemeral range to pick from
_TRIES = 512


def ephemeral_range() -> tuple[int, int]:
    """The kernel's source ports for outgoing connections (Linux; else its default)."""
    try:
        lo, hi = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
        return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def bindable(host: str, port: int) -> bool:
    """Free now; no SO_REUSEADDR, so a port still in TIME_WAIT counts as taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def listenable(host: str, port: int) -> bool:
    """A server could listen there now, as the sim does (SO_REUSEADDR: a port
    in TIME_WAIT after the last run is fine, one with a listener is not)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            s.listen(1)
        except OSError:
            return False
    return True


def pick_port(host: str = "127.0.0.1", accept: Callable[[int], bool] = lambda _p: True) -> int:
    """A free port below the ephemeral range that ``accept`` takes. Where the
    range leaves no room below it, the kernel's choice (bind 0)."""
    start, _ = ephemeral_range()
    lo = max(1024, start - _SPAN)
    rng = random.Random()
    if start - lo >= 1000:
        for _ in range(_TRIES):
            port = rng.randrange(lo, start)
            if accept(port) and bindable(host, port):
                return port
    for _ in range(_TRIES):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
        if accept(port):
            return port
    raise RuntimeError(f"no free port on {host}")
