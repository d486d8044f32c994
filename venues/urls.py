"""Where the venues live: real defaults, the sim's URL object, ccxt overrides.

A venue is addressed by two roots, :class:`VenueUrls` ``rest`` and ``ws``:

- Upbit: ``rest`` is the scheme+host (ccxt appends ``/v1/...``), ``ws`` the
  full ``.../websocket/v1`` URL.
- Binance: ``rest`` is the scheme+host (``/api/v3`` is ccxt's
  ``urls['api']['public'|'private']``), ``ws`` the raw-stream base ending in
  ``/ws`` (ccxt's ``urls['api']['ws']['spot']``).

That is exactly the shape of the embedded exchange's URL object
(ARCHITECTURE section 5), so ``from_sim(urls)`` is a field copy.

When ccxt is pointed anywhere but the real venue, *every* HTTP root in its
``urls['api']`` is rebased onto ``rest`` (keeping each path): an endpoint we
did not think of fails against the sim instead of reaching a real exchange.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from venues import BINANCE, UPBIT


@dataclass(frozen=True, slots=True)
class VenueUrls:
    rest: str
    ws: str


REAL: Mapping[str, VenueUrls] = {
    UPBIT: VenueUrls(rest="https://api.upbit.com", ws="wss://api.upbit.com/websocket/v1"),
    BINANCE: VenueUrls(rest="https://api.binance.com", ws="wss://stream.binance.com:9443/ws"),
}


def venue_urls(venue: str, urls: VenueUrls | Mapping[str, str] | None = None) -> VenueUrls:
    """Normalise ``urls`` (a VenueUrls, a ``{"rest", "ws"}`` mapping — ``ws``
    optional — or None for the real venue) for ``venue``."""
    if venue not in REAL:
        raise ValueError(f"unknown venue {venue!r}")
    if urls is None:
        return REAL[venue]
    if isinstance(urls, VenueUrls):
        return urls
    rest = urls.get("rest")
    if not rest:
        raise ValueError(f"{venue}: urls need a 'rest' root")
    ws = urls.get("ws") or REAL[venue].ws
    return VenueUrls(rest=str(rest).rstrip("/"), ws=str(ws))


def from_sim(sim_urls: Mapping[str, Any]) -> dict[str, VenueUrls]:
    """``{"upbit": VenueUrls, "binance": VenueUrls}`` from the sim's URL object."""
    return {v: venue_urls(v, sim_urls[v]) for v in (UPBIT, BINANCE)}


def is_real(venue: str, urls: VenueUrls) -> bool:
    return urls.rest.rstrip("/") == REAL[venue].rest


def _rebase(url: str, root: str) -> str:
    path = urlsplit(url).path
    return root.rstrip("/") + path


def ccxt_api_urls(venue: str, default_api: Mapping[str, Any], urls: VenueUrls) -> dict[str, Any]:
    """The ``exchange.urls['api']`` to use for ``urls``, given ccxt's default.

    Real URLs: ccxt's own table, untouched. Anything else: every ``http(s)``
    root rebased onto ``urls.rest`` — except Upbit's ``https://{hostname}``
    templates, which become ``urls.rest`` itself — and the WebSocket entry
    (present on ``ccxt.pro`` classes) set to ``urls.ws``.
    """
    api = copy.deepcopy(dict(default_api))
    if is_real(venue, urls):
        return api
    for key, value in api.items():
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            api[key] = urls.rest if "{hostname}" in value else _rebase(value, urls.rest)
        elif isinstance(value, dict) and key != "ws":
            api[key] = {k: (_rebase(v, urls.rest) if isinstance(v, str) and v.startswith("http") else v)
                        for k, v in value.items()}
    if "ws" in api:
        if venue == BINANCE and isinstance(api["ws"], dict):
            api["ws"] = {**api["ws"], "spot": urls.ws}
        elif venue == UPBIT:
            api["ws"] = urls.ws
    return api
