"""Request signing as each venue checks it (and as ccxt 4.5.90 produces it).

Binance: hex HMAC-SHA256(secret, totalParams), where totalParams is the query
string concatenated with the request body (no ``&`` between them), without
the ``signature`` parameter itself.

Upbit: ``Authorization: Bearer <JWT HS256>`` whose payload holds
``access_key``, a fresh ``nonce`` and, when the request has parameters,
``query_hash`` = hex SHA-512 of the *unescaped* ``k=v&k2=v2`` string of the
parameters in the order sent (ccxt's ``rawencode``), ``query_hash_alg`` SHA512.
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


class AuthError(Exception):
    """Authentication failed; ``name`` is the venue's error name or code."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message


# -- Binance ----------------------------------------------------------------------------


def binance_signature(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def split_signature(raw: str) -> tuple[str, str | None]:
    """Remove ``signature=...`` from a raw urlencoded string: (rest, signature)."""
    if not raw:
        return "", None
    kept, sig = [], None
    for part in raw.split("&"):
        if part.startswith("signature="):
            sig = part[len("signature="):]
        else:
            kept.append(part)
    return "&".join(kept), sig


def binance_total_params(raw_query: str, raw_body: str) -> tuple[str, str | None]:
    """(totalParams to sign, signature found in either part)."""
    q, sig_q = split_signature(raw_query)
    b, sig_b = split_signature(raw_body)
    return q + b, sig_q or sig_b


def binance_verify(secret: str, raw_query: str, raw_body: str) -> bool:
    payload, sig = binance_total_params(raw_query, raw_body)
    if not sig:
        return False
    return hmac.compare_digest(binance_signature(secret, payload), sig.lower())


# -- Upbit ------------------------------------------------------------------------------


def upbit_query_string(params: Iterable[tuple[str, Any]]) -> str:
    """ccxt's ``rawencode``: urlencode (bools as true/false), then unquote."""
    pairs = [(k, ("true" if v else "false") if isinstance(v, bool) else v) for k, v in params]
    return unquote(urlencode(pairs, quote_via=quote))


def upbit_query_hash(params: Iterable[tuple[str, Any]]) -> str:
    return hashlib.sha512(upbit_query_string(params).encode()).hexdigest()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_upbit_jwt(access_key: str, secret: str, params: Iterable[tuple[str, Any]] | None = None,
                   nonce: str | None = None) -> str:
    """A token as ccxt builds it (for raw clients and tests)."""
    payload: dict[str, Any] = {"access_key": access_key, "nonce": nonce or str(uuid.uuid4())}
    plist = list(params or [])
    if plist:
        payload["query_hash"] = upbit_query_hash(plist)
        payload["query_hash_alg"] = "SHA512"
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = _b64url(json.dumps(payload, separators=(",", ":")).encode())
    sig = _b64url(hmac.new(secret.encode(), f"{header}.{body}".encode(), hashlib.sha256).digest())
    return f"{header}.{body}.{sig}"


def decode_upbit_jwt(token: str, secrets: dict[str, str]) -> dict[str, Any]:
    """Verify an HS256 token against the secret of its ``access_key``; return its payload."""
    try:
        header_b64, body_b64, sig_b64 = token.split(".")
        header = json.loads(_b64url_decode(header_b64))
        payload = json.loads(_b64url_decode(body_b64))
        sig = _b64url_decode(sig_b64)
    except (ValueError, TypeError):
        raise AuthError("jwt_verification", "Jwt 토큰 검증에 실패했습니다.") from None
    if not isinstance(payload, dict) or not isinstance(header, dict):
        raise AuthError("jwt_verification", "Jwt 토큰 검증에 실패했습니다.")
    secret = secrets.get(str(payload.get("access_key")))
    if secret is None:
        raise AuthError("invalid_access_key", "잘못된 엑세스 키입니다.")
    alg = header.get("alg")
    digest = {"HS256": hashlib.sha256, "HS512": hashlib.sha512}.get(str(alg))
    if digest is None:
        raise AuthError("jwt_verification", "Jwt 토큰 검증에 실패했습니다.")
    expected = hmac.new(secret.encode(), f"{header_b64}.{body_b64}".encode(), digest).digest()
    if not hmac.compare_digest(expected, sig):
        raise AuthError("jwt_verification", "Jwt 토큰 검증에 실패했습니다.")
    if not payload.get("nonce"):
        raise AuthError("jwt_verification", "Jwt 토큰 검증에 실패했습니다.")
    return payload
