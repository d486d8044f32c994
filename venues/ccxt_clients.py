"""ccxt async clients for Upbit and Binance, pointed at given URLs.

Builders return *unmodified* ccxt ``async_support`` classes, configured and
pointed at the given URLs (the real venue by default, the embedded exchange
in paper mode and tests). Keys come only from the ``keys`` argument. ccxt
logs every request with its headers at DEBUG (X-MBX-APIKEY, a Bearer JWT),
so its logger is one that can never emit DEBUG.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import ccxt.async_support as ccxt_async

from venues import BINANCE, UPBIT
from venues.urls import VenueUrls, ccxt_api_urls, venue_urls

_CCXT_LOG = logging.getLogger("venues.rest.ccxt")
_CCXT_LOG.setLevel(logging.INFO)


def _keys_config(keys: Mapping[str, str] | None) -> dict[str, str]:
    if not keys:
        return {}
    api_key, secret = keys.get("apiKey"), keys.get("secret")
    if not api_key or not secret:
        raise ValueError("keys need both 'apiKey' and 'secret'")
    return {"apiKey": str(api_key), "secret": str(secret)}


def _build(cls: type, venue: str, urls: VenueUrls | Mapping[str, str] | None,
           keys: Mapping[str, str] | None, config: dict[str, Any]) -> Any:
    exchange = cls({"enableRateLimit": True, **config, **_keys_config(keys)})
    exchange.urls["api"] = ccxt_api_urls(venue, exchange.urls["api"], venue_urls(venue, urls))
    exchange.logger = _CCXT_LOG
    exchange.verbose = False
    return exchange


def build_upbit(urls: VenueUrls | Mapping[str, str] | None = None,
                keys: Mapping[str, str] | None = None, *, timeout_ms: int = 10_000) -> Any:
    """``ccxt.async_support.upbit`` at ``urls`` (real Upbit when None).

    ``keys``: ``{"apiKey": access key, "secret": secret key}`` or None
    (public endpoints only).
    """
    return _build(ccxt_async.upbit, UPBIT, urls, keys, {"timeout": timeout_ms})


def build_binance(urls: VenueUrls | Mapping[str, str] | None = None,
                  keys: Mapping[str, str] | None = None, *, timeout_ms: int = 10_000,
                  recv_window_ms: int = 5_000) -> Any:
    """``ccxt.async_support.binance`` (spot only) at ``urls`` (real Binance when None).

    load_markets then reads only ``/api/v3/exchangeInfo``: no currencies, no
    margin pairs, no futures markets, no server-time call.
    """
    return _build(ccxt_async.binance, BINANCE, urls, keys, {
        "timeout": timeout_ms,
        "options": {
            "defaultType": "spot",
            "fetchMarkets": {"types": ["spot"]},
            "fetchCurrencies": False,
            "fetchMargins": False,
            "adjustForTimeDifference": False,
            "recvWindow": recv_window_ms,
            "fetchOpenOrders": {"warnWithoutSymbol": False},
        },
    })
