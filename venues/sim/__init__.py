"""The embedded exchange: a local Upbit (KRW) + Binance (USDT spot) that ccxt and
plain websockets clients cannot tell from the real venues for everything arbd uses.

Start it
    - alone: ``bin/arbd sim --port N --seed S`` (Upbit on N, Binance on N+1, admin on
      N+2; port 0 = ephemeral). The first stdout line is the URL object below.
    - in an actor: ``SimThread(SimConfig(...)).start()`` returns the URL object (uvloop);
      ``.stop()`` joins the thread. In a test: ``venues.sim.testing.sim_thread(...)``,
      the same on the stdlib loop. ``SimExchange`` is the same on a running asyncio loop.

URL object (ARCHITECTURE section 5)::

    {"binance": {"rest": "http://127.0.0.1:P", "ws": "ws://127.0.0.1:P/ws"},
     "upbit":   {"rest": "http://127.0.0.1:Q", "ws": "ws://127.0.0.1:Q/websocket/v1"},
     "admin":   "http://127.0.0.1:R",
     "test_keys": {"binance": {"apiKey": ..., "secret": ...}, "upbit": {"apiKey": ..., "secret": ...}}}

Point ccxt at it: Binance ``urls['api']['public'] = urls['api']['private'] = binance.rest + "/api/v3"``
(ccxt pro: ``urls['api']['ws']['spot'] = binance.ws``), options
``{'fetchMarkets': {'types': ['spot']}, 'fetchCurrencies': False, 'fetchMargins': False,
'adjustForTimeDifference': False}``; Upbit ``urls['api'] = {'public': upbit.rest,
'private': upbit.rest, 'ws': upbit.ws}``.

Test keys (fixed; they open nothing outside the simulator)
    ========  ===================================================================  =====================================================================
    venue     apiKey                                                               secret
    ========  ===================================================================  =====================================================================
    binance   ``simBinanceTestKey00000000000000000000000000000000000000000000001``  ``simBinanceTestSecret000000000000000000000000000000000000000000001``
    upbit     ``simUpbitTestAccessKey0000000000000000001``                          ``simUpbitTestSecretKey0000000000000000000000000000001``
    ========  ===================================================================  =====================================================================

Starting balances (``SimConfig.upbit_balances`` / ``binance_balances``)
    - Upbit:   100,000,000 KRW, 1 BTC, 20 ETH, 50,000 XRP
    - Binance: 70,000 USDT, 1 BTC, 20 ETH, 50,000 XRP

Markets: Upbit KRW-BTC, KRW-ETH, KRW-XRP and KRW-USDT (the bridge rate, tick 0.5);
Binance BTCUSDT, ETHUSDT, XRPUSDT. Ticks, lots, fees and the Upbit 5,000 KRW minimum
come from ``arbitrage.venue_rules``. Prices: BTC ~68,000 USD, ETH ~3,500, XRP ~0.6,
USDT/KRW ~1,400, kimchi premium ~2 % (mean-reverting, regime switches, jumps);
the same seed gives the same price path.

Orders: an Upbit ``POST /v1/orders`` is answered as accepted (``state: "wait"``, nothing
executed), as the venue does; the fill is on ``myOrder`` or ``GET /v1/order``. A Binance
order answers with its fills (``newOrderRespType=FULL``, the default for LIMIT).

Admin (loopback only): ``GET /_sim/orders`` (every order ever received, rejected ones
too: ``venue, client_order_id, symbol, side, type, price, qty, status, filled, ts_ns``
plus ``coin, tif, quote_qty, cost, fee, order_id, reason``), ``GET /_sim/balances``,
``GET|POST|DELETE /_sim/fault`` (kinds: pause, drop, malformed, http_error, delay,
insufficient_funds), ``GET|POST /_sim/market`` (nudge premium / fx / USD prices),
``GET /_sim/limits`` (each venue's REST limits: ``{venue: {name: {"limit", "window_s",
"violations", "max_in_window"}}}``) and ``POST /_sim/limits/reset`` (zero the counters).

REST rate limits are the venues' published ones (``SimConfig.venue_rate_limits``,
numbers in ``upbit_*_limit_per_s`` / ``binance_*``): Upbit per group and second
(order 8, order-test 8, default 30, each quotation group 10; every reply carries
``Remaining-Req: group=<g>; min=1800; sec=<left>``, over the limit a plain-text 429);
Binance request weight 6000/min and raw requests 61000/5 min (over: 429 -1003 with
``Retry-After``), unfilled orders 100/10 s and 200000/day (over: 429 -1015, no
``Retry-After``), ``X-MBX-USED-WEIGHT-1M`` on every reply and
``X-MBX-ORDER-COUNT-10S`` / ``-1D`` on order replies. Details: ``upbit_rest.py``,
``binance_rest.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from venues.sim.config import TEST_KEYS, SimConfig, SimConfigError

if TYPE_CHECKING:
    from venues.sim.server import SimExchange, SimThread, run_standalone

__all__ = ["TEST_KEYS", "SimConfig", "SimConfigError", "SimExchange", "SimThread", "run_standalone"]


def __getattr__(name: str) -> Any:
    # The servers pull in aiohttp; load them only when asked for.
    if name in ("SimExchange", "SimThread", "run_standalone"):
        from venues.sim import server

        return getattr(server, name)
    raise AttributeError(name)
