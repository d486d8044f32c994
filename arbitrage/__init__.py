"""Pure domain logic: no I/O, no sockets, no threads; clocks are passed in.

The seed names (D47, D14) are the public API: ``LiveSafetyGuard``,
``LiveTradingConfig``, ``LiveGuardDecision``, ``AdvancedPositionManager``,
``LongRunTester``, ``RiskModeRebalancer``.
"""

from arbitrage.accounting import Pair, Portfolio
from arbitrage.baseline import BaselineConfig, PremiumBaseline
from arbitrage.freshness import FreshnessMonitor
from arbitrage.live_guard import LiveGuardDecision, LiveSafetyGuard, LiveTradingConfig
from arbitrage.longrun import LongRunTester
from arbitrage.memory_guard import MemoryGuard
from arbitrage.planner import IntentPlanner, PlannerConfig
from arbitrage.position_adv import AdvancedPositionManager, MarketRegime
from arbitrage.premium import PremiumCalculator, PremiumConfig
from arbitrage.rebalancer import RebalanceDecision, RebalancerConfig, RiskMode, RiskModeRebalancer
from arbitrage.risk_guard import RiskGuard
from arbitrage.strategy import PairStrategy, Signal, StrategyConfig
from arbitrage.trading_state import TradingStateMachine

__all__ = [
    "Pair", "Portfolio", "BaselineConfig", "PremiumBaseline", "FreshnessMonitor",
    "LiveGuardDecision", "LiveSafetyGuard", "LiveTradingConfig", "LongRunTester", "MemoryGuard",
    "IntentPlanner", "PlannerConfig", "AdvancedPositionManager", "MarketRegime",
    "PremiumCalculator", "PremiumConfig", "RebalanceDecision", "RebalancerConfig", "RiskMode",
    "RiskModeRebalancer", "RiskGuard", "PairStrategy", "Signal", "StrategyConfig",
    "TradingStateMachine",
]
