"""Upbit message and object shapes (field names as the real API uses them).

Numbers in market data are JSON numbers (floats); numbers in account and
order objects are strings, as Upbit sends them. ``created_at`` is ISO-8601 in
KST (+09:00).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from venues.sim.books import Book
from venues.sim.engine import SimOrder
from venues.sim.tape import DayStats, PublicTrade

KST = timezone(timedelta(hours=9))

# SIMPLE format abbreviations (docs.upbit.com websocket pages; UNCONFIRMED where the
# docs excerpt was truncated: stream_type -> st, level -> lv).
SIMPLE_KEYS: dict[str, str] = {
    "type": "ty", "code": "cd", "timestamp": "tms", "stream_type": "st",
    # orderbook
    "total_ask_size": "tas", "total_bid_size": "tbs", "orderbook_units": "obu",
    "ask_price": "ap", "bid_price": "bp", "ask_size": "as", "bid_size": "bs", "level": "lv",
    # ticker
    "opening_price": "op", "high_price": "hp", "low_price": "lp", "trade_price": "tp",
    "prev_closing_price": "pcp", "change": "c", "change_price": "cp", "signed_change_price": "scp",
    "change_rate": "cr", "signed_change_rate": "scr", "trade_volume": "tv", "acc_trade_volume": "atv",
    "acc_trade_volume_24h": "atv24h", "acc_trade_price": "atp", "acc_trade_price_24h": "atp24h",
    "trade_date": "tdt", "trade_time": "ttm", "trade_timestamp": "ttms", "ask_bid": "ab",
    "acc_ask_volume": "aav", "acc_bid_volume": "abv", "highest_52_week_price": "h52wp",
    "highest_52_week_date": "h52wdt", "lowest_52_week_price": "l52wp", "lowest_52_week_date": "l52wdt",
    "market_state": "ms", "is_trading_suspended": "its", "delisting_date": "dd", "market_warning": "mw",
    # trade
    "sequential_id": "sid", "best_ask_price": "bap", "best_ask_size": "bas",
    "best_bid_price": "bbp", "best_bid_size": "bbs",
}
_TRADE_SIMPLE = {"trade_date": "td"}  # trade messages abbreviate trade_date as td


def simplify(msg: dict[str, Any]) -> dict[str, Any]:
    extra = _TRADE_SIMPLE if msg.get("type") == "trade" else {}
    out: dict[str, Any] = {}
    for k, v in msg.items():
        if isinstance(v, list):
            v = [simplify(x) if isinstance(x, dict) else x for x in v]
        out[extra.get(k) or SIMPLE_KEYS.get(k, k)] = v
    return out


def num(x: float | None) -> str | None:
    """Upbit's decimal strings: no exponent, no trailing zeros."""
    if x is None:
        return None
    text = f"{x:.8f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def iso_kst(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000.0, KST).isoformat(timespec="seconds")


def _units(book: Book, n: int) -> tuple[list[dict[str, float]], float, float]:
    asks, bids = book.top_asks(n), book.top_bids(n)
    rows = min(len(asks), len(bids))
    units = [{"ask_price": float(asks[i][0]), "bid_price": float(bids[i][0]),
              "ask_size": float(asks[i][1]), "bid_size": float(bids[i][1])} for i in range(rows)]
    return units, round(sum(q for _, q in asks[:rows]), 8), round(sum(q for _, q in bids[:rows]), 8)


def orderbook_ws(book: Book, n: int, ts_ms: int, stream_type: str) -> dict[str, Any]:
    units, tas, tbs = _units(book, n)
    return {"type": "orderbook", "code": book.market_id, "timestamp": ts_ms,
            "total_ask_size": tas, "total_bid_size": tbs, "orderbook_units": units,
            "stream_type": stream_type, "level": 0}


def orderbook_rest(book: Book, n: int, ts_ms: int) -> dict[str, Any]:
    units, tas, tbs = _units(book, n)
    return {"market": book.market_id, "timestamp": ts_ms, "total_ask_size": tas,
            "total_bid_size": tbs, "orderbook_units": units, "level": 0}


def _change(s: DayStats) -> dict[str, Any]:
    diff = s.last - s.prev_close
    rate = diff / s.prev_close if s.prev_close else 0.0
    return {"change": "RISE" if diff > 0 else ("FALL" if diff < 0 else "EVEN"),
            "change_price": abs(diff), "signed_change_price": diff,
            "change_rate": abs(rate), "signed_change_rate": rate}


def ticker(market_id: str, s: DayStats, ts_ms: int, stream_type: str | None) -> dict[str, Any]:
    """WS ticker (``stream_type`` set) or REST ticker (``stream_type`` None)."""
    t = s.last_trade
    t_ms = t.ts_ms if t else ts_ms
    when = datetime.fromtimestamp(t_ms / 1000.0, UTC)
    body: dict[str, Any] = {
        "opening_price": s.open, "high_price": s.high, "low_price": s.low, "trade_price": s.last,
        "prev_closing_price": s.prev_close, **_change(s),
        "trade_volume": t.qty if t else 0.0, "acc_trade_volume": s.volume, "acc_trade_volume_24h": s.volume,
        "acc_trade_price": s.quote_volume, "acc_trade_price_24h": s.quote_volume,
        "trade_date": when.strftime("%Y%m%d"), "trade_time": when.strftime("%H%M%S"),
        "trade_timestamp": t_ms, "highest_52_week_price": s.high, "highest_52_week_date": when.strftime("%Y-%m-%d"),
        "lowest_52_week_price": s.low, "lowest_52_week_date": when.strftime("%Y-%m-%d"), "timestamp": ts_ms,
    }
    if stream_type is None:
        return {"market": market_id, **body}
    return {"type": "ticker", "code": market_id, **body,
            "ask_bid": "BID" if t is None or t.taker_side == "buy" else "ASK",
            "acc_ask_volume": s.ask_volume, "acc_bid_volume": s.bid_volume,
            "market_state": "ACTIVE", "is_trading_suspended": False, "delisting_date": None,
            "market_warning": "NONE", "stream_type": stream_type}


def trade(market_id: str, t: PublicTrade, s: DayStats, book: Book, ts_ms: int, stream_type: str) -> dict[str, Any]:
    when = datetime.fromtimestamp(t.ts_ms / 1000.0, UTC)
    bid, ask = book.best_bid(), book.best_ask()
    diff = t.price - s.prev_close
    return {
        "type": "trade", "code": market_id, "timestamp": ts_ms,
        "trade_date": when.strftime("%Y-%m-%d"), "trade_time": when.strftime("%H:%M:%S"),
        "trade_timestamp": t.ts_ms, "trade_price": t.price, "trade_volume": t.qty,
        "ask_bid": "BID" if t.taker_side == "buy" else "ASK", "prev_closing_price": s.prev_close,
        "change": "RISE" if diff > 0 else ("FALL" if diff < 0 else "EVEN"), "change_price": abs(diff),
        "sequential_id": t.ts_ms * 1000 + t.trade_id % 1000,
        "best_ask_price": ask[0] if ask else None, "best_ask_size": ask[1] if ask else None,
        "best_bid_price": bid[0] if bid else None, "best_bid_size": bid[1] if bid else None,
        "stream_type": stream_type,
    }


def order_state(o: SimOrder) -> str:
    if o.is_open:
        return "wait"
    return "done" if o.status == "filled" else "cancel"


def order_json(o: SimOrder, fee_rate: float, *, with_trades: bool = False,
               state: str | None = None) -> dict[str, Any]:
    ord_type = o.meta.get("ord_type", o.type)
    side = "bid" if o.side == "buy" else "ask"
    if ord_type == "price" or (ord_type == "best" and o.side == "buy"):
        price, volume, remaining = o.quote_qty, None, None
    else:
        price, volume, remaining = o.price, o.qty, o.remaining()
    if o.side == "buy":
        reserved = (o.quote_qty if o.quote_qty is not None else (o.price or 0.0) * (o.qty or 0.0)) * fee_rate
        remaining_fee = max(0.0, reserved - o.fee) if o.is_open else 0.0
    else:
        reserved = remaining_fee = 0.0
    out: dict[str, Any] = {
        "uuid": o.order_id, "side": side, "ord_type": ord_type, "price": num(price),
        "state": state or order_state(o), "market": o.market_id, "created_at": iso_kst(o.created_ms),
        "volume": num(volume), "remaining_volume": num(remaining), "reserved_fee": num(reserved),
        "remaining_fee": num(remaining_fee), "paid_fee": num(o.fee), "locked": num(max(o.locked, 0.0)),
        "executed_volume": num(o.filled), "executed_funds": num(o.cost), "trades_count": len(o.fills),
    }
    if o.meta.get("time_in_force"):
        out["time_in_force"] = o.meta["time_in_force"]
    if o.client_order_id is not None:
        out["identifier"] = o.client_order_id
    if with_trades:
        out["trades"] = [{
            "market": o.market_id, "uuid": f"{o.order_id[:24]}{f.trade_id:012d}", "price": num(f.price),
            "volume": num(f.qty), "funds": num(f.quote), "trend": "up" if o.side == "buy" else "down",
            "created_at": iso_kst(f.ts_ms), "side": side,
        } for f in o.fills]
    return out


def accepted_json(o: SimOrder, fee_rate: float) -> dict[str, Any]:
    """``POST /v1/orders``' reply: the order as the venue took it, before any match.

    Upbit answers an order request once it is accepted, with ``state: "wait"``,
    nothing executed and the funds it locked (the reference's example reply,
    exchange_protocols.md C.4, and docs.upbit.com/kr/reference/new-order); what
    it then matched comes on ``myOrder`` or from ``GET /v1/order``. An IOC that
    filled at once is therefore still ``wait`` here, as on the venue.
    """
    out = order_json(o, fee_rate)
    volume = o.qty if out["volume"] is not None else None
    reserved = float(out["reserved_fee"] or 0.0)
    if o.side == "buy":
        spend = o.quote_qty if o.quote_qty is not None else (o.price or 0.0) * (o.qty or 0.0)
        locked = spend + reserved
    else:
        locked = o.qty or 0.0
    out.update({"state": "wait", "remaining_volume": num(volume), "remaining_fee": num(reserved),
                "paid_fee": num(0.0), "locked": num(locked), "executed_volume": num(0.0),
                "executed_funds": num(0.0), "trades_count": 0})
    return out
