"""Request signing for the hot order path, as the venues check it.

Binance: ``signature`` = hex HMAC-SHA256(secret, totalParams), totalParams the
query string followed by the body (developers.binance.com, "SIGNED Endpoint
security"). Upbit: ``Authorization: Bearer <JWT HS256>`` whose payload holds
``access_key``, a fresh ``nonce`` and, when the request has parameters,
``query_hash`` = hex SHA-512 of the unescaped ``k=v&...`` string of the
parameters in the order sent, ``query_hash_alg`` ``SHA512`` (docs.upbit.com,
"인증 요청"). Both are what ccxt 4.5 produces, byte for byte.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, unquote, urlencode

_JWT_HEADER = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=").decode()


def binance_signature(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def upbit_query_string(params: Iterable[tuple[str, Any]]) -> str:
    return unquote(urlencode(list(params), quote_via=quote))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def upbit_jwt(access_key: str, secret: str, params: Iterable[tuple[str, Any]] = ()) -> str:
    payload: dict[str, Any] = {"access_key": access_key, "nonce": str(uuid.uuid4())}
    plist = list(params)
    if plist:
        payload["query_hash"] = hashlib.sha512(upbit_query_string(plist).encode()).hexdigest()
        payload["query_hash_alg"] = "SHA512"
    body = _b64url(json.dumps(payload, separators=(",", ":")).encode())
    sig = _b64url(hmac.new(secret.encode(), f"{_JWT_HEADER}.{body}".encode(), hashlib.sha256).digest())
    return f"{_JWT_HEADER}.{body}.{sig}"
