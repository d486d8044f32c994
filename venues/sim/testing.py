"""Helpers for tests that talk to a running simulator: ccxt clients pointed at it
(unmodified classes, only URLs, keys and the documented options changed) and a
tiny blocking admin client.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from venues.sim.config import SimConfig
from venues.sim.server import SimExchange, SimThread


def sim_thread(config: SimConfig | None = None,
               factory: Callable[[SimConfig], SimExchange] | None = None) -> SimThread:
    """A ``SimThread`` for a test process, on the stdlib event loop.

    A pytest worker starts and stops dozens of sims, several alive at once, in
    one process. A worker died of SIGABRT from a thread without Python code
    while two sims' uvloop loops ran; uvloop 0.22.1's libuv (1.48) aborts the
    whole process when an fd it watches is closed behind its back (libuv issue
    #5130), the likely cause. The daemon's sim process runs one sim for its
    life and keeps uvloop; the protocol under test is the same.
    """
    return SimThread(config, factory, loop_factory=asyncio.new_event_loop)

BINANCE_OPTIONS: dict[str, Any] = {
    "fetchMarkets": {"types": ["spot"]},
    "fetchCurrencies": False,
    "fetchMargins": False,
    "adjustForTimeDifference": False,
}


def ccxt_binance(urls: dict[str, Any], *, pro: bool = False, keys: dict[str, str] | None = None,
                 **config: Any) -> Any:
    """A ``ccxt.async_support.binance`` (or ``ccxt.pro.binance``) aimed at the sim."""
    if pro:
        import ccxt.pro as ccxt_mod
    else:
        import ccxt.async_support as ccxt_mod
    k = urls["test_keys"]["binance"] if keys is None else keys
    options = {**BINANCE_OPTIONS, **config.pop("options", {})}
    ex = ccxt_mod.binance({"apiKey": k.get("apiKey"), "secret": k.get("secret"), "options": options, **config})
    rest = urls["binance"]["rest"] + "/api/v3"
    ex.urls["api"]["public"] = rest
    ex.urls["api"]["private"] = rest
    if pro:
        ex.urls["api"]["ws"]["spot"] = urls["binance"]["ws"]
    return ex


def ccxt_upbit(urls: dict[str, Any], *, pro: bool = False, keys: dict[str, str] | None = None,
               **config: Any) -> Any:
    """A ``ccxt.async_support.upbit`` (or ``ccxt.pro.upbit``) aimed at the sim."""
    if pro:
        import ccxt.pro as ccxt_mod
    else:
        import ccxt.async_support as ccxt_mod
    k = urls["test_keys"]["upbit"] if keys is None else keys
    ex = ccxt_mod.upbit({"apiKey": k.get("apiKey"), "secret": k.get("secret"), **config})
    api = {"public": urls["upbit"]["rest"], "private": urls["upbit"]["rest"]}
    if pro:
        api["ws"] = urls["upbit"]["ws"]
    ex.urls["api"] = api
    return ex


def admin(urls: dict[str, Any], method: str, path: str, body: Any = None,
          timeout: float = 5.0) -> tuple[int, Any]:
    """Blocking admin call: (HTTP status, decoded JSON body)."""
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(urls["admin"] + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")
