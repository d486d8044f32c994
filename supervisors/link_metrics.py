"""Prometheus families for the links between the main daemon and its nodes:
the round trip per link (a histogram, from every ping/report exchange), each
host's clock offset, and whether each node reports."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily

from supervisors.curve import MAIN

if TYPE_CHECKING:
    from supervisors.nodes import Nodes

RTT_BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)


class LinkMetrics:
    """Prometheus families for the links (a collector on the exporter's registry)."""

    def __init__(self, nodes: Nodes) -> None:
        self.nodes = nodes

    def collect(self) -> Any:
        rtt = HistogramMetricFamily("arbd_link_rtt_seconds", "Round trip of the main <-> node link "
                                    "(ping -> report, less the node's hold time)", labels=["link"])
        offset = GaugeMetricFamily("arbd_host_clock_offset_seconds", "Host clock minus the main daemon's",
                                   labels=["host"])
        up = GaugeMetricFamily("arbd_host_up", "1 while the node reports", labels=["host"])
        for link in list(self.nodes.links.values()):
            label = f"{MAIN}-{link.name}"
            acc, buckets = 0, []
            for b, n in zip(RTT_BUCKETS_S, link.rtt_counts, strict=False):
                acc += n
                buckets.append((str(b), float(acc)))
            buckets.append(("+Inf", float(acc + link.rtt_counts[-1])))
            rtt.add_metric([label], buckets, link.rtt_sum_s)
            off = link.clock.offset_ns
            if off is not None:
                offset.add_metric([link.name], off / 1e9)
            up.add_metric([link.name], 1.0 if link.up else 0.0)
        return [rtt, offset, up]
