"""The one codec: every registered message round-trips; anything else is a DecodeError."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from messages import REGISTRY, BookTop, Command, Heartbeat, Message, Reply
from messages.codec import MAX_FRAME_BYTES, WIRE_VERSION, DecodeError, Envelope, decode, encode

INT64 = st.integers(min_value=-(2**63), max_value=2**64 - 1)
FLOATS = st.floats(allow_nan=False)  # NaN != NaN would break equality, not the codec
TEXT = st.text(max_size=24)

# What an untyped (``object``) field may carry: msgpack-native values. Arrays
# come back as lists, so lists (not tuples) are what round-trip.
ANY_VALUE = st.recursive(
    st.none() | st.booleans() | INT64 | FLOATS | TEXT | st.binary(max_size=16),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=6,
)


def strategy_for(tp: Any) -> st.SearchStrategy[Any]:
    """A strategy for any field type the codec claims to handle."""
    if tp is bool:
        return st.booleans()
    if tp is int:
        return INT64
    if tp is float:
        return FLOATS
    if tp is str:
        return TEXT
    if tp is bytes:
        return st.binary(max_size=32)
    if tp in (object, Any):
        return ANY_VALUE
    if dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        return st.builds(tp, **{f.name: strategy_for(hints[f.name]) for f in dataclasses.fields(tp)})
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*[st.none() if a is type(None) else strategy_for(a) for a in args])
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return st.lists(strategy_for(args[0]), max_size=4).map(tuple)
        return st.tuples(*[strategy_for(a) for a in args])
    if origin is dict:
        return st.dictionaries(strategy_for(args[0]), strategy_for(args[1]), max_size=4)
    raise TypeError(f"no strategy for field type {tp!r}: teach strategy_for about it")


TAGS = sorted(REGISTRY)
MESSAGES = {tag: strategy_for(cls) for tag, cls in REGISTRY.items()}
ANY_MESSAGE = st.sampled_from(TAGS).flatmap(lambda tag: MESSAGES[tag])


def _frame(msg: Message) -> bytes:
    return encode(msg, "engine", 1_700_000_000_000_000_000, 42)


def _envelope(tag: str, body: Any, version: Any = WIRE_VERSION, sender: Any = "x",
              incarnation: Any = 1, seq: Any = 1) -> bytes:
    return msgpack.packb([version, tag, sender, incarnation, seq, body], use_bin_type=True)


def test_the_registry_holds_the_core_messages() -> None:
    for cls in (BookTop, Heartbeat, Command, Reply):
        assert REGISTRY[cls.TAG] is cls
    assert all(tag == REGISTRY[tag].TAG for tag in TAGS)


@pytest.mark.parametrize("tag", TAGS)
def test_every_registered_message_round_trips(tag: str) -> None:
    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(msg=MESSAGES[tag], sender=TEXT, incarnation=INT64, seq=INT64)
    def check(msg: Message, sender: str, incarnation: int, seq: int) -> None:
        env = decode(encode(msg, sender, incarnation, seq))

        assert env == Envelope(msg, sender, incarnation, seq)
        assert type(env.msg) is REGISTRY[tag]

    check()


def test_a_frame_decodes_from_bytearray_and_memoryview() -> None:
    frame = _frame(Command(command="status", args={"a": 1}))

    assert decode(bytearray(frame)) == decode(frame) == decode(memoryview(frame))


@pytest.mark.parametrize("frame", [None, "text", 42, [1, 2], object()], ids=lambda f: type(f).__name__)
def test_a_frame_that_is_not_bytes_is_a_decode_error(frame: Any) -> None:
    with pytest.raises(DecodeError):
        decode(frame)


@settings(max_examples=1500, deadline=None)
@given(st.binary(max_size=512))
def test_random_bytes_never_raise_anything_but_decode_error(frame: bytes) -> None:
    try:
        env = decode(frame)
    except DecodeError:
        return
    assert type(env.msg) in REGISTRY.values()


@settings(max_examples=400, deadline=None)
@given(ANY_MESSAGE, st.data())
def test_corrupted_frames_never_raise_anything_but_decode_error(msg: Message, data: st.DataObject) -> None:
    frame = bytearray(_frame(msg))
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "insert", "delete"]))
        i = data.draw(st.integers(0, len(frame) - 1))
        if op == "flip":
            frame[i] = data.draw(st.integers(0, 255))
        elif op == "insert":
            frame.insert(i, data.draw(st.integers(0, 255)))
        elif len(frame) > 1:
            del frame[i]
    try:
        env = decode(bytes(frame))
    except DecodeError:
        return
    assert type(env.msg) in REGISTRY.values()


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(TAGS), st.data())
def test_well_formed_envelopes_with_random_fields_never_raise_anything_but_decode_error(
        tag: str, data: st.DataObject) -> None:
    n = len(dataclasses.fields(REGISTRY[tag]))
    body = data.draw(st.lists(ANY_VALUE, min_size=max(0, n - 1), max_size=n + 1))
    try:
        env = decode(_envelope(tag, body))
    except DecodeError:
        return
    assert type(env.msg) is REGISTRY[tag]


@settings(max_examples=150, deadline=None)
@given(ANY_MESSAGE)
def test_every_truncation_of_a_valid_frame_is_a_decode_error(msg: Message) -> None:
    frame = _frame(msg)

    for n in range(len(frame)):
        with pytest.raises(DecodeError):
            decode(frame[:n])


def test_an_oversized_frame_is_a_decode_error_before_it_is_parsed() -> None:
    with pytest.raises(DecodeError, match="exceeds"):
        decode(b"\x00" * (MAX_FRAME_BYTES + 1))


def test_a_valid_message_one_byte_over_the_limit_is_a_decode_error_and_at_the_limit_is_not() -> None:
    def reply_of(n: int) -> bytes:
        return _frame(Reply(id="r", ts_ns=1, request_id="q", ok=True, result="x" * n))

    n = MAX_FRAME_BYTES - (len(reply_of(MAX_FRAME_BYTES)) - MAX_FRAME_BYTES)
    at_limit, over = reply_of(n), reply_of(n + 1)
    assert len(at_limit) == MAX_FRAME_BYTES and len(over) == MAX_FRAME_BYTES + 1

    assert decode(at_limit).msg.result == "x" * n
    with pytest.raises(DecodeError):
        decode(over)


BOOK_BODY = ["id1", 5, "upbit", "BTC", 1.0, 2.0, 0.5, 0.5, [], [], 0, 0]


@pytest.mark.parametrize("body,why", [
    (["id1", 5, "upbit", "BTC", "1.0", 2.0, 0.5, 0.5, [], [], 0, 0], "a price as a string"),
    (["id1", 5, "upbit", "BTC", True, 2.0, 0.5, 0.5, [], [], 0, 0], "a bool for a float"),
    (["id1", 5.5, "upbit", "BTC", 1.0, 2.0, 0.5, 0.5, [], [], 0, 0], "a float for an int"),
    (["id1", True, "upbit", "BTC", 1.0, 2.0, 0.5, 0.5, [], [], 0, 0], "a bool for an int"),
    ([b"id1", 5, "upbit", "BTC", 1.0, 2.0, 0.5, 0.5, [], [], 0, 0], "bytes for a str"),
    (["id1", 5, "upbit", "BTC", 1.0, 2.0, 0.5, 0.5, [[1.0]], [], 0, 0], "a level of one number"),
    (["id1", 5, "upbit", "BTC", 1.0, 2.0, 0.5, 0.5, {"a": 1}, [], 0, 0], "a map for levels"),
    (["id1", 5, "upbit", "BTC", 1.0, 2.0, 0.5, 0.5, [], [], 0], "a field missing"),
    ([*BOOK_BODY, 0], "a field too many"),
    ({"venue": "upbit"}, "a map for the body"),
    (None, "no body"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_a_wrong_typed_body_is_a_decode_error(body: Any, why: str) -> None:
    assert decode(_envelope("book", BOOK_BODY)).msg.bid == 1.0  # the baseline is valid

    with pytest.raises(DecodeError):
        decode(_envelope("book", body))


@pytest.mark.parametrize("kwargs", [
    {"version": 2}, {"version": "1"}, {"sender": 5}, {"sender": None}, {"incarnation": "1"},
    {"incarnation": 1.0}, {"seq": None}, {"seq": 2.5},
], ids=str)
def test_a_bad_envelope_header_is_a_decode_error(kwargs: dict[str, Any]) -> None:
    with pytest.raises(DecodeError):
        decode(_envelope("book", BOOK_BODY, **kwargs))


@pytest.mark.parametrize("outer", [[], [1, "book"], [1, "book", "x", 1, 1, BOOK_BODY, "extra"],
                                   {"tag": "book"}, "book", 7, None], ids=repr)
def test_something_that_is_not_an_envelope_is_a_decode_error(outer: Any) -> None:
    with pytest.raises(DecodeError):
        decode(msgpack.packb(outer, use_bin_type=True))


def test_an_unknown_tag_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="unknown message tag"):
        decode(_envelope("no-such-message", []))


def test_a_nested_message_with_a_wrong_field_is_a_decode_error() -> None:
    from messages import DirectionQuote, Opportunity

    q = DirectionQuote(direction="sell_upbit", premium_pct=1.0, edge_pct=0.5, qty=0.1,
                       upbit_price=1.0, binance_price=1.0)
    opp = Opportunity(symbol="BTC", premium_pct=1.0, baseline_pct=0.0, fx=1300.0, sell_upbit=q,
                      buy_upbit=q, expires_ns=1)
    body = msgpack.unpackb(_frame(opp))[5]
    names = [f.name for f in dataclasses.fields(Opportunity)]
    body[names.index("sell_upbit")][[f.name for f in dataclasses.fields(DirectionQuote)].index("qty")] = "lots"

    with pytest.raises(DecodeError, match="qty"):
        decode(_envelope("opp", body))



def _generic(cls: type, body: Any) -> tuple[str, Any]:
    """The generic decoder alone: the message, or the error it names."""
    from messages.codec import _dataclass_decoder

    try:
        return "ok", _dataclass_decoder(cls).slow(body)  # type: ignore[attr-defined]
    except DecodeError as e:
        return "error", str(e)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(msg=ANY_MESSAGE, data=st.data())
def test_the_generated_fast_decoder_agrees_with_the_generic_one(msg: Message, data: st.DataObject) -> None:
    """Same message for every valid body; for a mutated body, either the same
    message or a fall-back to the generic decoder (which names the error)."""
    from messages.codec import _SLOW, _dataclass_decoder

    cls = type(msg)
    body = msgpack.unpackb(_frame(msg), raw=False, strict_map_key=False)[5]
    dec = _dataclass_decoder(cls)
    assert dec.fast(body) == msg  # type: ignore[attr-defined]
    i = data.draw(st.integers(0, len(body) - 1))
    body[i] = data.draw(ANY_VALUE)
    fast = dec.fast(body)  # type: ignore[attr-defined]
    if fast is not _SLOW:
        assert _generic(cls, body) == ("ok", fast)


def test_a_book_with_integer_levels_takes_the_generic_path_and_gets_floats() -> None:
    top = BookTop(venue="upbit", symbol="BTC", bid=1.0, ask=2.0, bid_size=1.0, ask_size=1.0,
                  bids=((1.0, 3.0),), asks=((2.0, 4.0),))
    outer = msgpack.unpackb(_frame(top), raw=False)
    outer[5][8] = [[1, 3]]
    got = decode(msgpack.packb(outer, use_bin_type=True)).msg
    assert got == top and type(got.bids[0][0]) is float
    outer[5][8] = [[True, 3.0]]
    with pytest.raises(DecodeError, match="bids"):
        decode(msgpack.packb(outer, use_bin_type=True))
