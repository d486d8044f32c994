"""Binance spot shapes: exchangeInfo symbols, orders, and stream payloads.

Prices and quantities are strings with 8 decimals, as Binance sends them.
"""

from __future__ import annotations

from typing import Any

from arbitrage.venue_rules import BINANCE_FILTERS
from venues.sim.books import Book
from venues.sim.engine import SimOrder
from venues.sim.tape import DayStats, PublicTrade

STATUS = {"new": "NEW", "partially_filled": "PARTIALLY_FILLED", "filled": "FILLED",
          "canceled": "CANCELED", "expired": "EXPIRED", "rejected": "REJECTED"}
MAX_PRICE = 1_000_000.0


def s8(x: float | None) -> str:
    return f"{(x or 0.0):.8f}"


def max_qty(coin: str, usd: float) -> tuple[float, float]:
    """(LOT_SIZE maxQty, MARKET_LOT_SIZE maxQty): about 1e9 / 2e7 USD, on the step grid."""
    step = BINANCE_FILTERS[coin].step_size
    lot = max(step, round(int(1e9 / max(usd, 1e-9) / step) * step, 8))
    market = max(step, round(int(2e7 / max(usd, 1e-9) / step) * step, 8))
    return lot, market


def symbol_info(coin: str, usd: float) -> dict[str, Any]:
    f = BINANCE_FILTERS[coin]
    lot_max, market_max = max_qty(coin, usd)
    return {
        "symbol": f"{coin}USDT", "status": "TRADING", "baseAsset": coin, "baseAssetPrecision": 8,
        "quoteAsset": "USDT", "quotePrecision": 8, "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8, "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT",
                       "TAKE_PROFIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": True, "ocoAllowed": True, "otoAllowed": True, "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True, "cancelReplaceAllowed": True, "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": s8(f.tick_size), "maxPrice": s8(MAX_PRICE),
             "tickSize": s8(f.tick_size)},
            {"filterType": "LOT_SIZE", "minQty": s8(f.min_qty), "maxQty": s8(lot_max), "stepSize": s8(f.step_size)},
            {"filterType": "NOTIONAL", "minNotional": s8(f.min_notional), "applyMinToMarket": True,
             "maxNotional": s8(9_000_000.0), "applyMaxToMarket": False, "avgPriceMins": 5},
            {"filterType": "MARKET_LOT_SIZE", "minQty": s8(0.0), "maxQty": s8(market_max), "stepSize": s8(0.0)},
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
        ],
        "permissions": [], "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }


def _base(o: SimOrder) -> dict[str, Any]:
    return {
        "symbol": o.market_id, "orderId": int(o.order_id), "orderListId": -1,
        "clientOrderId": o.client_order_id, "price": s8(o.price if o.type == "limit" else 0.0),
        "origQty": s8(o.qty if o.qty is not None else o.filled), "executedQty": s8(o.filled),
        "cummulativeQuoteQty": s8(o.cost), "status": STATUS[o.status],
        "timeInForce": o.meta.get("time_in_force", "GTC"), "type": o.meta.get("order_type", "LIMIT"),
        "side": o.side.upper(),
    }


def order_new(o: SimOrder, resp_type: str) -> dict[str, Any]:
    if resp_type == "ACK":
        return {"symbol": o.market_id, "orderId": int(o.order_id), "orderListId": -1,
                "clientOrderId": o.client_order_id, "transactTime": o.created_ms}
    out = {"symbol": o.market_id, "orderId": int(o.order_id), "orderListId": -1,
           "clientOrderId": o.client_order_id, "transactTime": o.created_ms}
    base = _base(o)
    for k in ("price", "origQty", "executedQty"):
        out[k] = base[k]
    out["origQuoteOrderQty"] = s8(o.quote_qty)
    for k in ("cummulativeQuoteQty", "status", "timeInForce", "type", "side"):
        out[k] = base[k]
    out["workingTime"] = o.created_ms if o.status != "expired" or o.fills else -1
    out["selfTradePreventionMode"] = "EXPIRE_MAKER"
    if resp_type == "FULL":
        out["fills"] = [{"price": s8(f.price), "qty": s8(f.qty), "commission": s8(f.fee),
                         "commissionAsset": f.fee_asset, "tradeId": f.trade_id} for f in o.fills]
    return out


def order_query(o: SimOrder) -> dict[str, Any]:
    out = _base(o)
    out.update({"stopPrice": s8(0.0), "icebergQty": s8(0.0), "time": o.created_ms,
                "updateTime": o.updated_ms, "isWorking": True, "workingTime": o.created_ms,
                "origQuoteOrderQty": s8(o.quote_qty), "selfTradePreventionMode": "EXPIRE_MAKER"})
    return out


def order_cancel(o: SimOrder, cancel_client_id: str, orig_client_id: str | None) -> dict[str, Any]:
    base = _base(o)
    base["clientOrderId"] = cancel_client_id
    return {"symbol": o.market_id, "origClientOrderId": orig_client_id, "orderId": int(o.order_id),
            "orderListId": -1, "clientOrderId": cancel_client_id, "transactTime": o.updated_ms,
            **{k: base[k] for k in ("price", "origQty", "executedQty", "cummulativeQuoteQty", "status",
                                    "timeInForce", "type", "side")},
            "origQuoteOrderQty": s8(o.quote_qty), "selfTradePreventionMode": "EXPIRE_MAKER"}


# -- streams -----------------------------------------------------------------------------


def levels(items: list[tuple[float, float]]) -> list[list[str]]:
    return [[s8(p), s8(q)] for p, q in items]


def depth_snapshot(book: Book, limit: int) -> dict[str, Any]:
    return {"lastUpdateId": book.update_id, "bids": levels(book.top_bids(limit)),
            "asks": levels(book.top_asks(limit))}


def depth_update(book: Book, first: int, last: int, bids: dict[float, float], asks: dict[float, float],
                 ts_ms: int) -> dict[str, Any]:
    return {"e": "depthUpdate", "E": ts_ms, "s": book.market_id, "U": first, "u": last,
            "b": levels(sorted(bids.items(), key=lambda kv: -kv[0])), "a": levels(sorted(asks.items()))}


def book_ticker(book: Book) -> dict[str, Any] | None:
    bid, ask = book.best_bid(), book.best_ask()
    if bid is None or ask is None:
        return None
    return {"u": book.update_id, "s": book.market_id, "b": s8(bid[0]), "B": s8(bid[1]),
            "a": s8(ask[0]), "A": s8(ask[1])}


def trade_event(book: Book, t: PublicTrade, ts_ms: int) -> dict[str, Any]:
    return {"e": "trade", "E": ts_ms, "s": book.market_id, "t": t.trade_id, "p": s8(t.price),
            "q": s8(t.qty), "T": t.ts_ms, "m": t.taker_side == "sell", "M": True}


def agg_trade_event(book: Book, t: PublicTrade, ts_ms: int) -> dict[str, Any]:
    return {"e": "aggTrade", "E": ts_ms, "s": book.market_id, "a": t.trade_id, "p": s8(t.price),
            "q": s8(t.qty), "f": t.trade_id, "l": t.trade_id, "T": t.ts_ms, "m": t.taker_side == "sell",
            "M": True}


def ticker_24h(book: Book, s: DayStats, ts_ms: int, mini: bool = False) -> dict[str, Any]:
    """``<sym>@ticker`` (24hrTicker) or ``<sym>@miniTicker`` (24hrMiniTicker) payload."""
    if mini:
        return {"e": "24hrMiniTicker", "E": ts_ms, "s": book.market_id, "c": s8(s.last), "o": s8(s.open),
                "h": s8(s.high), "l": s8(s.low), "v": s8(s.volume), "q": s8(s.quote_volume)}
    bid, ask = book.best_bid() or (0.0, 0.0), book.best_ask() or (0.0, 0.0)
    change = s.last - s.open
    last = s.last_trade
    return {"e": "24hrTicker", "E": ts_ms, "s": book.market_id, "p": s8(change),
            "P": f"{100 * change / s.open:.3f}" if s.open else "0.000",
            "w": s8(s.quote_volume / s.volume if s.volume else s.last), "x": s8(s.prev_close),
            "c": s8(s.last), "Q": s8(last.qty if last else 0.0), "b": s8(bid[0]), "B": s8(bid[1]),
            "a": s8(ask[0]), "A": s8(ask[1]), "o": s8(s.open), "h": s8(s.high), "l": s8(s.low),
            "v": s8(s.volume), "q": s8(s.quote_volume), "O": ts_ms - 86_400_000, "C": ts_ms,
            "F": 0, "L": s.count, "n": s.count}
