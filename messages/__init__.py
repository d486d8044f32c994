"""Message types (frozen dataclasses) and the one codec that puts them on the wire."""

from messages.base import REGISTRY, Message, new_id, register
from messages.cluster import (
    HostClocks,
    NodeHello,
    NodePing,
    NodeRelay,
    NodeReport,
    NodeWelcome,
    RemoteChild,
)
from messages.codec import DecodeError, Envelope, decode, encode, warm
from messages.control import (
    Ack,
    ActorInfo,
    Balances,
    CoinExposure,
    Command,
    EventNote,
    FailClosed,
    Heartbeat,
    MetricsSample,
    OrderStats,
    PositionState,
    RebalanceRequest,
    Reply,
    RestartRequest,
    SupervisorReport,
    TradingState,
)
from messages.lifecycle import WarmState
from messages.market import BookTop, Level
from messages.trading import (
    BUY_UPBIT,
    SELL_UPBIT,
    DirectionQuote,
    GuardDecision,
    LedgerResync,
    Opportunity,
    OrderEvent,
    OrderIntent,
    OrderLeg,
    VenueHealth,
)

__all__ = [
    "REGISTRY", "Message", "new_id", "register",
    "DecodeError", "Envelope", "decode", "encode", "warm",
    "HostClocks", "NodeHello", "NodePing", "NodeRelay", "NodeReport", "NodeWelcome", "RemoteChild",
    "Ack", "ActorInfo", "Balances", "CoinExposure", "SupervisorReport", "Command", "EventNote", "FailClosed", "Heartbeat", "MetricsSample",
    "OrderStats", "PositionState", "RebalanceRequest", "Reply", "RestartRequest",
    "TradingState", "BookTop", "Level",
    "BUY_UPBIT", "SELL_UPBIT", "DirectionQuote", "GuardDecision", "LedgerResync", "Opportunity",
    "OrderEvent", "OrderIntent", "OrderLeg", "VenueHealth", "WarmState",
]
