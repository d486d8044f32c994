"""Pre-trade funding check: what each leg takes, and whether free minus in-flight covers it."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arbitrage.inventory import FEE, QUOTE, Need, leg_need, reserved, unfunded
from arbitrage.venue_rules import BINANCE, BINANCE_TAKER_FEE, UPBIT, UPBIT_TAKER_FEE

# -- leg_need ---------------------------------------------------------------------------------------

def test_quote_assets_and_fees_per_venue() -> None:
    assert QUOTE == {UPBIT: "KRW", BINANCE: "USDT"}
    assert FEE == {UPBIT: UPBIT_TAKER_FEE, BINANCE: BINANCE_TAKER_FEE}


@pytest.mark.parametrize(("venue", "quote", "fee"), [
    (UPBIT, "KRW", UPBIT_TAKER_FEE), (BINANCE, "USDT", BINANCE_TAKER_FEE)])
def test_a_buy_needs_quote_notional_plus_taker_fee(venue: str, quote: str, fee: float) -> None:
    qty, price = 0.0123, 143_500_000.0 if venue == UPBIT else 100_000.5

    n = leg_need(venue, "BTC", "buy", qty, price)

    assert n == Need(venue=venue, asset=quote, amount=pytest.approx(qty * price * (1 + fee), rel=1e-12))
    assert n.amount > qty * price  # the fee is on top, never inside


def test_upbit_buy_need_in_krw_example() -> None:
    # 0.01 BTC at 140,000,000 KRW: 1,400,000 KRW + 0.05 % fee = 1,400,700 KRW.
    n = leg_need(UPBIT, "BTC", "buy", 0.01, 140_000_000.0)

    assert n.asset == "KRW"
    assert n.amount == pytest.approx(1_400_700.0)


def test_binance_buy_need_in_usdt_example() -> None:
    # 2 ETH at 3,000 USDT: 6,000 USDT + 0.1 % margin for the fee = 6,006 USDT.
    n = leg_need(BINANCE, "ETH", "buy", 2.0, 3_000.0)

    assert n.asset == "USDT"
    assert n.amount == pytest.approx(6_006.0)


@pytest.mark.parametrize("venue", [UPBIT, BINANCE])
@pytest.mark.parametrize("symbol", ["BTC", "XRP"])
def test_a_sell_needs_exactly_the_coin_quantity(venue: str, symbol: str) -> None:
    n = leg_need(venue, symbol, "sell", 1.2345, 99_999.0)

    assert n == Need(venue=venue, asset=symbol, amount=1.2345)


# -- reserved ---------------------------------------------------------------------------------------

def test_reserved_sums_per_venue_and_asset() -> None:
    needs = [Need(venue=UPBIT, asset="KRW", amount=100.0), Need(venue=UPBIT, asset="KRW", amount=50.0),
             Need(venue=UPBIT, asset="BTC", amount=0.1), Need(venue=BINANCE, asset="BTC", amount=0.2),
             Need(venue=BINANCE, asset="BTC", amount=0.3)]

    assert reserved(needs) == {(UPBIT, "KRW"): 150.0, (UPBIT, "BTC"): 0.1,
                               (BINANCE, "BTC"): pytest.approx(0.5)}
    assert reserved([]) == {}


# -- unfunded -----------------------------------------------------------------------------------------

def pair_needs(qty: float = 0.01) -> list[Need]:
    """SELL_UPBIT pair: sell BTC on Upbit, buy BTC with USDT on Binance."""
    return [leg_need(UPBIT, "BTC", "sell", qty, 143_500_000.0),
            leg_need(BINANCE, "BTC", "buy", qty, 100_000.0)]


def test_funded_pair_gives_empty_string() -> None:
    free = {UPBIT: {"BTC": 1.0, "KRW": 0.0}, BINANCE: {"USDT": 10_000.0}}

    assert unfunded(pair_needs(), free, {}) == ""


def test_no_needs_are_always_funded() -> None:
    assert unfunded([], {}, {}) == ""


def test_unknown_venue_balances_cannot_fund() -> None:
    free = {UPBIT: {"BTC": 1.0}}

    why = unfunded(pair_needs(), free, {})

    assert why == f"{BINANCE} balances unknown"


def test_reported_but_missing_asset_counts_as_zero() -> None:
    free = {UPBIT: {"KRW": 10_000_000.0}, BINANCE: {"USDT": 10_000.0}}

    why = unfunded(pair_needs(), free, {})

    assert why.startswith(f"{UPBIT} BTC:")
    assert "0 available" in why


def test_short_message_names_venue_asset_need_and_balances() -> None:
    free = {UPBIT: {"BTC": 1.0}, BINANCE: {"USDT": 900.0}}
    held = {(BINANCE, "USDT"): 100.0}

    why = unfunded(pair_needs(), free, held)  # binance needs 1,001 USDT; 900 - 100 = 800 available

    assert why.startswith(f"{BINANCE} USDT:")
    assert "needs 1001" in why
    assert "800 available" in why
    assert "900 free" in why
    assert "100 in flight" in why


def test_in_flight_holdings_reduce_what_is_available() -> None:
    needs = [leg_need(UPBIT, "BTC", "sell", 0.5, 1.0)]
    free = {UPBIT: {"BTC": 1.0}}

    assert unfunded(needs, free, {}) == ""
    assert unfunded(needs, free, {(UPBIT, "BTC"): 0.4}) == ""
    assert unfunded(needs, free, {(UPBIT, "BTC"): 0.6}) != ""
    # held on another venue or asset does not matter
    assert unfunded(needs, free, {(BINANCE, "BTC"): 0.9, (UPBIT, "KRW"): 1e12}) == ""


def test_needs_of_one_asset_are_summed_before_checking() -> None:
    needs = [leg_need(UPBIT, "BTC", "sell", 0.6, 1.0), leg_need(UPBIT, "BTC", "sell", 0.6, 1.0)]
    free = {UPBIT: {"BTC": 1.0}}

    assert unfunded(needs[:1], free, {}) == ""
    why = unfunded(needs, free, {})
    assert why.startswith(f"{UPBIT} BTC:") and "needs 1.2" in why


@pytest.mark.parametrize("margin", [0.0, 0.002, 0.05])
def test_exactly_funded_with_margin_passes_and_one_ulp_less_fails(margin: float) -> None:
    n = leg_need(BINANCE, "BTC", "buy", 0.0137, 98_765.43)
    exact = n.amount * (1.0 + margin)
    needs = [n]

    assert unfunded(needs, {BINANCE: {"USDT": exact}}, {}, margin=margin) == ""
    assert unfunded(needs, {BINANCE: {"USDT": math.nextafter(exact, 0.0)}}, {}, margin=margin) != ""


def test_default_margin_keeps_two_per_mille_back() -> None:
    needs = [leg_need(UPBIT, "XRP", "sell", 1000.0, 800.0)]

    assert unfunded(needs, {UPBIT: {"XRP": 1002.0}}, {}) == ""
    assert unfunded(needs, {UPBIT: {"XRP": 1001.9}}, {}) != ""
    assert unfunded(needs, {UPBIT: {"XRP": 1000.0}}, {}) != ""  # exactly the qty is not enough
    assert unfunded(needs, {UPBIT: {"XRP": 1000.0}}, {}, margin=0.0) == ""


def test_exactly_funded_with_in_flight_holdings() -> None:
    n = leg_need(UPBIT, "BTC", "buy", 0.01, 140_000_000.0)
    held = {(UPBIT, "KRW"): 250_000.0}
    free_exact = n.amount * 1.002 + 250_000.0

    assert unfunded([n], {UPBIT: {"KRW": free_exact}}, held) == ""
    assert unfunded([n], {UPBIT: {"KRW": free_exact - 1.0}}, held) != ""


@settings(max_examples=200, deadline=None)
@given(qty=st.floats(1e-6, 1e3), price=st.floats(1e-3, 2e8), free=st.floats(0, 1e12),
       held=st.floats(0, 1e12), margin=st.floats(0, 0.05), venue=st.sampled_from([UPBIT, BINANCE]),
       side=st.sampled_from(["buy", "sell"]))
def test_unfunded_agrees_with_the_arithmetic(qty: float, price: float, free: float, held: float,
                                             margin: float, venue: str, side: str) -> None:
    n = leg_need(venue, "BTC", side, qty, price)
    asset = QUOTE[venue] if side == "buy" else "BTC"
    why = unfunded([n], {venue: {asset: free}}, {(venue, asset): held}, margin=margin)

    short = n.amount * (1 + margin) > free - held
    assert (why != "") == short
    if short:
        assert why.startswith(f"{venue} {asset}:")
