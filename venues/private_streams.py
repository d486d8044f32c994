"""The venues' private streams as clients: every order state change and balance
change of our accounts, pushed (Binance's user data stream, Upbit's
``/websocket/v1/private``).

Both stream classes run one task on the caller's asyncio loop (``start()``
there, ``await close()`` to stop) and call back on that loop's thread:

- ``on_order(OrderUpdate)`` per order event, ``on_balance(BalanceUpdate)`` per
  balance event (``full=False``: only the assets listed changed);
- ``on_state(venue, up, reason)``: ``False`` at once when a connection drops or
  cannot be made, ``True`` when it is subscribed again.

Any drop reconnects with exponential backoff and jitter (reset once a connection
is subscribed). A malformed frame is logged in one line and skipped; a callback
that raises is logged and the stream carries on. Nothing logged or reported
carries a key, a JWT or a listenKey.

Binance (binance-spot-api-docs ``user-data-stream.md``, listenKey edition of
2024-12-17, commit 947d9ba): ``POST /api/v3/userDataStream`` with
``X-MBX-APIKEY`` gives a listenKey, the socket is ``<ws root>/<listenKey>``; a
``PUT`` keepalive every ``keepalive_s`` (30 min, as the docs recommend); a key that
is refused (handshake 4xx, ``-1125`` on keepalive, a ``listenKeyExpired`` event) is
dropped and a new one fetched; ``close()`` DELETEs it. ``executionReport``: ``c``
is the client id (``C``, the original one, on a cancel), ``z``/``Z`` cumulative,
``n``/``N`` the fill's commission, summed per order in the quote asset (a base-coin
commission converted at the fill price ``L``; any other asset, e.g. BNB, cannot be
converted here and is left out). ``outboundAccountPosition`` gives balances.

Upbit (docs.upbit.com/kr/reference/websocket-myorder and websocket-myasset; the
sample payloads in ccxt 4.5.90 ``pro/upbit.py``): the handshake carries
``Authorization: Bearer <JWT>`` (HS256 over ``{access_key, nonce}``, fresh per
connection), then ``[{ticket}, {"type": "myOrder"}, {"type": "myAsset"},
{"format": "DEFAULT"}]``. ``identifier`` is the client id, ``paid_fee`` the
cumulative fee in KRW, ``avg_price`` (or ``executed_funds / executed_volume``).

Safety: a private stream is only ever opened where its REST root points too:
both loopback (the simulator) or both the real venue; anything else raises
``ValueError`` in ``__init__`` (keys must not reach a real venue's socket from a
test set-up, nor a stranger's host).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import ipaddress
import json
import logging
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from venues import BINANCE, UPBIT
from venues.urls import REAL

log = logging.getLogger("venues.private")


class _InfoAndUp(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.INFO


# websockets logs the handshake at DEBUG: the Authorization header (Upbit's JWT) and
# the request line (Binance's listenKey). Its connections log here, never below INFO.
_wire_log = logging.getLogger("venues.private.wire")
_wire_log.setLevel(logging.INFO)
_wire_log.addFilter(_InfoAndUp())

KEEPALIVE_S = 30 * 60.0
_QUOTES = ("USDT", "USDC", "FDUSD", "BUSD")
_TOL = 1e-12


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    venue: str
    client_order_id: str
    venue_order_id: str
    symbol: str  # the coin, e.g. "BTC"
    side: str  # "buy" | "sell"
    status: str  # "open" | "partially_filled" | "filled" | "cancelled" | "rejected"
    done: bool  # nothing more can fill
    filled_qty: float
    avg_price: float
    fee_quote: float  # cumulative, in the quote currency (KRW on Upbit, USDT on Binance)
    ts_ns: int


@dataclass(frozen=True, slots=True)
class BalanceUpdate:
    venue: str
    free: dict[str, float]
    locked: dict[str, float]
    ts_ns: int
    full: bool  # True: a full snapshot; False: only the assets listed changed


Update = OrderUpdate | BalanceUpdate


class MalformedFrame(ValueError):
    """A frame that is not what the venue sends; the message says why (no payload)."""


class ListenKeyExpired(Exception):
    """Binance said the listenKey expired: fetch a new one."""


class VenueStreamError(Exception):
    """The venue answered the subscription with an error object."""


# -- parsing (pure) ---------------------------------------------------------------------------


def _loads(raw: str | bytes) -> Any:
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes | bytearray) else raw
        return json.loads(text)
    except (UnicodeDecodeError, ValueError):
        raise MalformedFrame("not JSON") from None


def _num(obj: dict[str, Any], key: str, default: float | None = None) -> float:
    value = obj.get(key)
    if value is None:
        if default is not None:
            return default
        raise MalformedFrame(f"missing {key}")
    if isinstance(value, bool):
        raise MalformedFrame(f"bad {key}")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise MalformedFrame(f"bad {key}") from None
    if out != out or out in (float("inf"), float("-inf")):
        raise MalformedFrame(f"bad {key}")
    return out


def _str(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise MalformedFrame(f"missing {key}")
    return str(value)


def _ts_ns(obj: dict[str, Any], key: str) -> int:
    value = obj.get(key)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value * 1_000_000
    raise MalformedFrame(f"bad {key}")


_BINANCE_STATUS = {"NEW": "open", "PENDING_NEW": "open", "PARTIALLY_FILLED": "partially_filled",
                   "FILLED": "filled", "CANCELED": "cancelled", "PENDING_CANCEL": "open",
                   "EXPIRED": "cancelled", "EXPIRED_IN_MATCH": "cancelled", "REJECTED": "rejected"}


class BinanceParser:
    """``executionReport`` / ``outboundAccountPosition`` frames -> updates. Keeps each
    open order's summed commission (reports carry only the fill's own)."""

    venue = BINANCE

    def __init__(self) -> None:
        self._fees: dict[str, float] = {}

    def parse(self, raw: str | bytes) -> list[Update]:
        msg = _loads(raw)
        if not isinstance(msg, dict):
            raise MalformedFrame("not an object")
        if "event" in msg and isinstance(msg["event"], dict):  # the WebSocket API's envelope
            msg = msg["event"]
        kind = msg.get("e")
        if kind == "executionReport":
            return [self._order(msg)]
        if kind == "outboundAccountPosition":
            return [self._balances(msg)]
        if kind == "listenKeyExpired":
            raise ListenKeyExpired()
        if isinstance(kind, str):
            return []  # balanceUpdate, listStatus, externalLockUpdate...: nothing we track
        if "result" in msg or "id" in msg:
            return []  # a reply to a request
        raise MalformedFrame("no event type")

    def _order(self, m: dict[str, Any]) -> OrderUpdate:
        symbol, order_id = _str(m, "s"), _str(m, "i")
        coin, quote = symbol, ""
        for q in _QUOTES:
            if symbol.endswith(q) and len(symbol) > len(q):
                coin, quote = symbol[: -len(q)], q
                break
        side = {"BUY": "buy", "SELL": "sell"}.get(str(m.get("S")))
        raw_status = m.get("X")
        if side is None or raw_status not in _BINANCE_STATUS:
            raise MalformedFrame("bad side or status")
        filled, cost = _num(m, "z"), _num(m, "Z", 0.0)
        fee = self._fees.get(order_id, 0.0)
        if m.get("x") == "TRADE":
            n, asset = _num(m, "n", 0.0), m.get("N")
            if asset == quote:
                fee += n
            elif asset == coin:
                fee += n * _num(m, "L")
            self._fees[order_id] = fee
        status = _BINANCE_STATUS[str(raw_status)]
        done = raw_status in ("FILLED", "CANCELED", "EXPIRED", "EXPIRED_IN_MATCH", "REJECTED")
        if status == "cancelled" and filled > _TOL:
            status = "partially_filled"
        if done:
            self._fees.pop(order_id, None)
        orig = m.get("C")
        cid = orig if isinstance(orig, str) and orig else m.get("c")
        return OrderUpdate(venue=BINANCE, client_order_id=str(cid or ""), venue_order_id=order_id, symbol=coin,
                           side=side, status=status, done=done, filled_qty=filled,
                           avg_price=cost / filled if filled > _TOL else 0.0, fee_quote=fee,
                           ts_ns=_ts_ns(m, "E"))

    @staticmethod
    def _balances(m: dict[str, Any]) -> BalanceUpdate:
        rows = m.get("B")
        if not isinstance(rows, list):
            raise MalformedFrame("bad B")
        free, locked = {}, {}
        for row in rows:
            if not isinstance(row, dict):
                raise MalformedFrame("bad B")
            asset = _str(row, "a")
            free[asset], locked[asset] = _num(row, "f"), _num(row, "l")
        return BalanceUpdate(venue=BINANCE, free=free, locked=locked, ts_ns=_ts_ns(m, "E"), full=False)


class UpbitParser:
    """``myOrder`` / ``myAsset`` frames (DEFAULT or JSON_LIST format) -> updates."""

    venue = UPBIT

    def parse(self, raw: str | bytes) -> list[Update]:
        msg = _loads(raw)
        items = msg if isinstance(msg, list) else [msg]
        out: list[Update] = []
        for item in items:
            if not isinstance(item, dict):
                raise MalformedFrame("not an object")
            kind = item.get("type")
            if kind == "myOrder":
                out.append(self._order(item))
            elif kind == "myAsset":
                out.append(self._assets(item))
            elif "error" in item:
                err = item["error"]
                name = err.get("name") if isinstance(err, dict) else None
                raise VenueStreamError(str(name or "error"))
            elif "status" in item or isinstance(kind, str):
                continue  # {"status":"UP"}, or a type we did not ask for
            else:
                raise MalformedFrame("no type")
        return out

    @staticmethod
    def _order(m: dict[str, Any]) -> OrderUpdate:
        code = _str(m, "code")
        coin = code.split("-", 1)[1] if "-" in code else code
        side = {"BID": "buy", "ASK": "sell"}.get(str(m.get("ask_bid")))
        state = m.get("state")
        if side is None:
            raise MalformedFrame("bad ask_bid")
        executed = _num(m, "executed_volume")
        funds = _num(m, "executed_funds", 0.0)
        avg = _num(m, "avg_price", 0.0)
        if avg <= 0 and executed > _TOL:
            avg = funds / executed
        if state in ("wait", "watch"):
            status, done = "open", False
        elif state == "trade":
            status, done = "partially_filled", False
        elif state == "done":
            volume = m.get("volume")
            short = isinstance(volume, int | float) and not isinstance(volume, bool) and executed < volume - 1e-9
            status, done = ("partially_filled" if short else "filled"), True
        elif state in ("cancel", "prevented"):
            status, done = ("partially_filled" if executed > _TOL else "cancelled"), True
        else:
            raise MalformedFrame("bad state")
        ident = m.get("identifier")
        return OrderUpdate(venue=UPBIT, client_order_id=ident if isinstance(ident, str) else "",
                           venue_order_id=_str(m, "uuid"), symbol=coin, side=side, status=status, done=done,
                           filled_qty=executed, avg_price=avg, fee_quote=_num(m, "paid_fee", 0.0),
                           ts_ns=_ts_ns(m, "timestamp"))

    @staticmethod
    def _assets(m: dict[str, Any]) -> BalanceUpdate:
        rows = m.get("assets")
        if not isinstance(rows, list):
            raise MalformedFrame("bad assets")
        free, locked = {}, {}
        for row in rows:
            if not isinstance(row, dict):
                raise MalformedFrame("bad assets")
            cur = _str(row, "currency")
            free[cur], locked[cur] = _num(row, "balance"), _num(row, "locked")
        return BalanceUpdate(venue=UPBIT, free=free, locked=locked, ts_ns=_ts_ns(m, "timestamp"), full=False)


# -- safety -----------------------------------------------------------------------------------


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_hosts(venue: str, rest_url: str, ws_url: str) -> None:
    """Both loopback, or both exactly the real venue's; otherwise ValueError."""
    rest, ws = urlsplit(rest_url), urlsplit(ws_url)
    if _is_loopback(rest.hostname) and _is_loopback(ws.hostname):
        return
    real_rest, real_ws = urlsplit(REAL[venue].rest), urlsplit(REAL[venue].ws)
    if (rest.scheme, rest.netloc) == (real_rest.scheme, real_rest.netloc) and \
            (ws.scheme, ws.netloc) == (real_ws.scheme, real_ws.netloc):
        return
    raise ValueError(f"{venue}: private stream refused: REST host {rest.hostname!r} and WebSocket host "
                     f"{ws.hostname!r} must both be loopback or both the real venue's")


def upbit_jwt(access_key: str, secret: str) -> str:
    """HS256 over ``{access_key, nonce}`` (no query: the handshake has none)."""
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    header = b64(b'{"alg":"HS256","typ":"JWT"}')
    body = b64(json.dumps({"access_key": access_key, "nonce": str(uuid.uuid4())}, separators=(",", ":")).encode())
    sig = b64(hmac.new(secret.encode(), f"{header}.{body}".encode(), hashlib.sha256).digest())
    return f"{header}.{body}.{sig}"


# -- the streams --------------------------------------------------------------------------------


OnOrder = Callable[[OrderUpdate], None]
OnBalance = Callable[[BalanceUpdate], None]
OnState = Callable[[str, bool, str], None]


class _PrivateStream:
    venue = ""

    def __init__(self, rest_url: str, ws_url: str, keys: dict[str, str], on_order: OnOrder,
                 on_balance: OnBalance, on_state: OnState, *, reconnect_min_s: float = 0.25,
                 reconnect_max_s: float = 15.0, open_timeout_s: float = 10.0, ping_interval_s: float = 20.0,
                 http_timeout_s: float = 10.0) -> None:
        check_hosts(self.venue, rest_url, ws_url)
        if not keys.get("apiKey") or not keys.get("secret"):
            raise ValueError(f"{self.venue}: private stream needs keys with 'apiKey' and 'secret'")
        self.rest_url = rest_url.rstrip("/")
        self.ws_url = ws_url.rstrip("/")
        self._api_key, self._secret = keys["apiKey"], keys["secret"]
        self.on_order, self.on_balance, self.on_state = on_order, on_balance, on_state
        self.reconnect_min_s, self.reconnect_max_s = reconnect_min_s, reconnect_max_s
        self.open_timeout_s, self.ping_interval_s = open_timeout_s, ping_interval_s
        self.http_timeout_s = http_timeout_s
        self._parser: BinanceParser | UpbitParser = BinanceParser() if self.venue == BINANCE else UpbitParser()
        self._task: asyncio.Task[None] | None = None
        self._ws: ClientConnection | None = None
        self._session: aiohttp.ClientSession | None = None
        self._up: bool | None = None
        self._closing = False
        self.connects = 0  # handshakes that ended subscribed (tests, status)
        self.malformed = 0

    # -- life ----------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"{self.venue}-private-stream")

    async def close(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
            self._ws = None
        with contextlib.suppress(Exception):
            await self._on_close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _on_close(self) -> None:
        """Venue-specific clean-up after the socket is closed."""

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.http_timeout_s))
        return self._session

    def _set_state(self, up: bool, reason: str) -> None:
        if up == self._up:
            return
        self._up = up
        try:
            self.on_state(self.venue, up, reason)
        except Exception:  # noqa: BLE001 - the caller's bug must not stop the stream
            log.exception("%s private stream: on_state callback failed", self.venue)

    def _scrub(self, text: str) -> str:
        return text

    def _describe(self, exc: BaseException) -> str:
        if isinstance(exc, InvalidStatus):
            return f"handshake refused: HTTP {exc.response.status_code}"
        if isinstance(exc, TimeoutError):
            return "timed out"
        text = str(exc).splitlines()[0] if str(exc) else ""
        return self._scrub(f"{type(exc).__name__}: {text}"[:200] if text else type(exc).__name__)

    async def _run(self) -> None:
        delay = self.reconnect_min_s
        while not self._closing:
            reason = "closed"
            try:
                ws = await self._open()
                self._ws = ws
                self.connects += 1
                self._set_state(True, "subscribed")
                delay = self.reconnect_min_s
                reason = await self._read(ws)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - every failure means: reconnect
                reason = self._describe(exc)
            finally:
                if self._ws is not None:
                    with contextlib.suppress(Exception):
                        await self._ws.close()
                    self._ws = None
            if self._closing:
                break
            self._set_state(False, reason)
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(self.reconnect_max_s, delay * 2)

    async def _open(self) -> ClientConnection:
        raise NotImplementedError

    async def _connect(self, url: str, headers: dict[str, str] | None = None) -> ClientConnection:
        return await connect(url, additional_headers=headers, open_timeout=self.open_timeout_s,
                             ping_interval=self.ping_interval_s, ping_timeout=self.ping_interval_s,
                             close_timeout=1.0, max_size=1 << 22, compression="deflate", logger=_wire_log)

    async def _read(self, ws: ClientConnection) -> str:
        """Deliver frames until the socket ends; returns why it ended."""
        try:
            async for raw in ws:
                try:
                    updates = self._parser.parse(raw)
                except MalformedFrame as exc:
                    self.malformed += 1
                    log.warning("%s private stream: skipped a malformed frame (%s, %d bytes)",
                                self.venue, exc, len(raw))
                    continue
                except ListenKeyExpired:
                    self._key_refused()
                    return "listenKey expired"
                except VenueStreamError as exc:
                    log.warning("%s private stream: the venue answered an error (%s)", self.venue, exc)
                    return f"venue error: {exc}"
                for update in updates:
                    self._deliver(update)
        except Exception as exc:  # noqa: BLE001 - a cut connection
            return self._describe(exc)
        code = ws.close_code
        return f"closed by the venue ({code})" if code is not None else "closed"

    def _deliver(self, update: Update) -> None:
        try:
            if isinstance(update, OrderUpdate):
                self.on_order(update)
            else:
                self.on_balance(update)
        except Exception:  # noqa: BLE001
            log.exception("%s private stream: callback failed", self.venue)

    def _key_refused(self) -> None:
        """Binance: forget the listenKey (a new one is fetched on reconnect)."""


class BinanceUserStream(_PrivateStream):
    """Binance's user data stream on a listenKey (see module docs)."""

    venue = BINANCE

    def __init__(self, rest_url: str, ws_url: str, keys: dict[str, str], on_order: OnOrder,
                 on_balance: OnBalance, on_state: OnState, *, keepalive_s: float = KEEPALIVE_S,
                 **options: Any) -> None:
        super().__init__(rest_url, ws_url, keys, on_order, on_balance, on_state, **options)
        self.keepalive_s = keepalive_s
        self._key: str | None = None
        self._keepalive: asyncio.Task[None] | None = None
        self.keys_fetched = 0

    def start(self) -> None:
        super().start()
        if self._keepalive is None:
            self._keepalive = asyncio.get_running_loop().create_task(self._keepalive_loop(),
                                                                     name="binance-listenkey-keepalive")

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "<listenKey>") if self._key else text

    def _key_refused(self) -> None:
        self._key = None

    async def _request(self, method: str, key: str | None = None) -> tuple[int, Any]:
        url = self.rest_url + "/api/v3/userDataStream"
        params = {"listenKey": key} if key else None
        async with self._http().request(method, url, params=params,
                                        headers={"X-MBX-APIKEY": self._api_key}) as resp:
            try:
                body = await resp.json(content_type=None)
            except ValueError:
                body = None
            return resp.status, body

    async def _open(self) -> ClientConnection:
        if self._key is None:
            status, body = await self._request("POST")
            key = body.get("listenKey") if isinstance(body, dict) else None
            if status != 200 or not isinstance(key, str) or not key.isalnum():
                code = body.get("code") if isinstance(body, dict) else None
                raise RuntimeError(f"listenKey not granted: HTTP {status}" + (f" code {code}" if code else ""))
            self._key = key
            self.keys_fetched += 1
        try:
            return await self._connect(f"{self.ws_url}/{self._key}")
        except InvalidStatus as exc:
            if 400 <= exc.response.status_code < 500:  # the key is refused (unknown/expired): get a new one
                self._key = None
            raise

    async def _keepalive_loop(self) -> None:
        while not self._closing:
            await asyncio.sleep(self.keepalive_s)
            key = self._key
            if key is None:
                continue
            try:
                status, body = await self._request("PUT", key)
            except Exception as exc:  # noqa: BLE001 - tried again next period
                log.warning("binance listenKey keepalive failed: %s", self._describe(exc))
                continue
            if status == 200:
                continue
            code = body.get("code") if isinstance(body, dict) else None
            log.warning("binance listenKey keepalive refused: HTTP %s code %s", status, code)
            if code == -1125 or status in (400, 401):
                if self._key == key:
                    self._key = None
                ws = self._ws
                if ws is not None:  # reconnect on a new key
                    await ws.close(code=1000, reason="listenKey refused")

    async def close(self) -> None:
        self._closing = True
        if self._keepalive is not None:
            self._keepalive.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._keepalive
            self._keepalive = None
        await super().close()

    async def _on_close(self) -> None:
        key, self._key = self._key, None
        if key is not None:
            await asyncio.wait_for(self._request("DELETE", key), timeout=2.0)


class UpbitPrivateStream(_PrivateStream):
    """Upbit's ``myOrder`` + ``myAsset`` on ``/websocket/v1/private`` (see module docs)."""

    venue = UPBIT

    async def _open(self) -> ClientConnection:
        token = upbit_jwt(self._api_key, self._secret)
        ws = await self._connect(f"{self.ws_url}/private", {"Authorization": f"Bearer {token}"})
        try:
            await ws.send(json.dumps([{"ticket": str(uuid.uuid4())}, {"type": "myOrder"}, {"type": "myAsset"},
                                      {"format": "DEFAULT"}]))
        except Exception:
            await ws.close()
            raise
        return ws
