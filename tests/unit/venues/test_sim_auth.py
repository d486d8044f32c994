"""Request signing as the simulated venues verify it."""

from __future__ import annotations

import hashlib

import ccxt
import pytest

from venues.sim.auth import (
    AuthError,
    binance_signature,
    binance_total_params,
    binance_verify,
    decode_upbit_jwt,
    make_upbit_jwt,
    upbit_query_hash,
    upbit_query_string,
)

# Binance's worked example (rest-api.md, "SIGNED Endpoint Examples").
SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
QUERY = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
SIGNATURE = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"


def test_binance_signature_matches_the_worked_example() -> None:
    assert binance_signature(SECRET, QUERY) == SIGNATURE


def test_binance_signature_in_the_body_is_verified() -> None:
    assert binance_verify(SECRET, "", f"{QUERY}&signature={SIGNATURE}")


def test_binance_total_params_concatenates_query_and_body_without_ampersand() -> None:
    query, body = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC", "quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
    payload, sig = binance_total_params(query, f"{body}&signature=abc")
    assert payload == query + body and sig == "abc"
    # The documented mixed example signs exactly that concatenation.
    assert binance_signature(SECRET, payload) == "0fd168b8ddb4876a0358a8d14d0c9f3da0e9b20c5d52b2a00fcf7d1c602f9a77"


def test_binance_rejects_a_tampered_query() -> None:
    assert not binance_verify(SECRET, QUERY.replace("quantity=1", "quantity=2") + f"&signature={SIGNATURE}", "")
    assert not binance_verify(SECRET, QUERY, "")  # no signature at all


def test_upbit_query_string_is_unescaped_like_ccxt_rawencode() -> None:
    params = [("market", "KRW-BTC"), ("states[]", "done"), ("flag", True)]
    assert upbit_query_string(params) == ccxt.Exchange.rawencode(dict(params)) == "market=KRW-BTC&states[]=done&flag=true"
    assert upbit_query_hash(params) == hashlib.sha512(b"market=KRW-BTC&states[]=done&flag=true").hexdigest()


def test_upbit_token_from_ccxt_decodes() -> None:
    token = ccxt.Exchange.jwt({"access_key": "ak", "nonce": "n1", "query_hash": "h", "query_hash_alg": "SHA512"},
                              b"sk", "sha256")
    assert decode_upbit_jwt(token, {"ak": "sk"})["query_hash"] == "h"


def test_upbit_token_round_trip_carries_the_query_hash() -> None:
    token = make_upbit_jwt("ak", "sk", [("uuid", "x")], nonce="n2")
    payload = decode_upbit_jwt(token, {"ak": "sk"})
    assert payload["nonce"] == "n2" and payload["query_hash"] == upbit_query_hash([("uuid", "x")])


@pytest.mark.parametrize(("token", "secrets", "name"), [
    (make_upbit_jwt("ak", "wrong"), {"ak": "sk"}, "jwt_verification"),
    (make_upbit_jwt("nobody", "sk"), {"ak": "sk"}, "invalid_access_key"),
    ("not-a-jwt", {"ak": "sk"}, "jwt_verification"),
])
def test_upbit_bad_tokens_are_rejected_with_the_venue_error_name(token: str, secrets: dict[str, str], name: str) -> None:
    with pytest.raises(AuthError) as info:
        decode_upbit_jwt(token, secrets)
    assert info.value.name == name
