"""Binance spot order validation: parameters, enums and symbol filters (-1013 "Filter failure: ...").

Filter values come from ``arbitrage.venue_rules.BINANCE_FILTERS``.
"""

from __future__ import annotations

import re

from arbitrage.venue_rules import BINANCE_FILTERS
from venues.sim import binance_format as fmt
from venues.sim.engine import SimOrder

CID_RE = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")
_NUM_RE = re.compile(r"^([0-9]{1,20})(\.[0-9]{1,20})?$")


class BinanceError(Exception):
    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code, self.msg, self.status = code, msg, status


def missing(name: str) -> BinanceError:
    return BinanceError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def _on_step(value: float, step: float) -> bool:
    units = value / step
    return abs(units - round(units)) < 1e-6


def _decimal(params: dict[str, str], name: str) -> float:
    raw = params.get(name)
    if raw is None or raw == "":
        raise missing(name)
    if not _NUM_RE.match(raw):
        raise BinanceError(-1100, f"Illegal characters found in parameter '{name}'; legal range is "
                                  "'^([0-9]{1,20})(\\.[0-9]{1,20})?$'.")
    return float(raw)

def order_terms(order: SimOrder, params: dict[str, str], usd_price: float, mid: float) -> None:
    """Fill ``order`` from the request parameters; raise BinanceError as Binance would."""
    if order.client_order_id and not CID_RE.match(order.client_order_id):
        raise BinanceError(-1100, "Illegal characters found in parameter 'newClientOrderId'; legal range is "
                                  "'^[\\.A-Z\\:/a-z0-9_-]{1,36}$'.")
    if "side" not in params:
        raise missing("side")
    if order.side not in ("buy", "sell"):
        raise BinanceError(-1117, "Invalid side.")
    if "type" not in params:
        raise missing("type")
    otype = params["type"]
    if otype not in ("LIMIT", "MARKET", "LIMIT_MAKER"):
        raise BinanceError(-1116, "Invalid orderType.")
    resp = params.get("newOrderRespType") or ("FULL" if otype == "MARKET" else "FULL")
    if resp not in ("ACK", "RESULT", "FULL"):
        raise BinanceError(-1100, "Illegal characters found in parameter 'newOrderRespType'.")
    order.meta.update(order_type=otype, resp_type=resp)
    f = BINANCE_FILTERS[order.coin]
    lot_max, market_max = fmt.max_qty(order.coin, usd_price)
    if otype == "MARKET":
        order.type = "market"
        order.tif = "IOC"
        order.meta["time_in_force"] = "GTC"
        has_q, has_c = bool(params.get("quantity")), bool(params.get("quoteOrderQty"))
        if has_q == has_c:
            raise missing("quantity") if not has_q else BinanceError(
                -1106, "Parameter 'quoteOrderQty' sent when not required.")
        ref = mid
        if has_q:
            order.qty = _decimal(params, "quantity")
            if order.qty < f.min_qty - 1e-12 or not _on_step(order.qty, f.step_size):
                raise BinanceError(-1013, "Filter failure: LOT_SIZE")
            if order.qty > market_max + 1e-12:
                raise BinanceError(-1013, "Filter failure: MARKET_LOT_SIZE")
            notional = order.qty * ref
        else:
            order.quote_qty = _decimal(params, "quoteOrderQty")
            notional = order.quote_qty
        if notional < f.min_notional - 1e-9:
            raise BinanceError(-1013, "Filter failure: NOTIONAL")
        return
    order.type = "limit"
    if otype == "LIMIT":
        tif = params.get("timeInForce")
        if not tif:
            raise missing("timeInForce")
        if tif not in ("GTC", "IOC", "FOK"):
            raise BinanceError(-1115, "Invalid timeInForce.")
        order.tif = tif
        order.meta["time_in_force"] = tif
    else:
        if params.get("timeInForce"):
            raise BinanceError(-1106, "Parameter 'timeInForce' sent when not required.")
        order.tif = "POST_ONLY"
        order.meta["time_in_force"] = "GTC"
    order.qty = _decimal(params, "quantity")
    order.price = _decimal(params, "price")
    if order.price < f.tick_size - 1e-12 or order.price > fmt.MAX_PRICE or not _on_step(order.price, f.tick_size):
        raise BinanceError(-1013, "Filter failure: PRICE_FILTER")
    if order.qty < f.min_qty - 1e-12 or order.qty > lot_max or not _on_step(order.qty, f.step_size):
        raise BinanceError(-1013, "Filter failure: LOT_SIZE")
    if order.price * order.qty < f.min_notional - 1e-9:
        raise BinanceError(-1013, "Filter failure: NOTIONAL")
