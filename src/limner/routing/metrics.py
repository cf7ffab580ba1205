"""Routes in ``/metrics``: per route target, its cooldown, failures in a row, p50 run time and
attempts by how they ended, read from the store at each scrape (so every replica agrees)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from limner.catalog.loader import Catalog
from limner.routing.view import routes_view
from limner.store.engine import Engines


class RouteCollector(Collector):
    def __init__(self, engines: Engines, catalog: Catalog) -> None:
        self.engines = engines
        self.catalog = catalog

    def collect(self) -> Iterator[Metric]:
        labels = ["route", "target"]
        cooling = GaugeMetricFamily(
            "limner_route_target_cooling_down", "1 while a target is in cooldown.", labels=labels
        )
        failures = GaugeMetricFamily(
            "limner_route_target_failures", "Retryable failures in a row of a target.", labels=labels
        )
        p50 = GaugeMetricFamily("limner_route_target_p50_seconds", "Recent p50 run time of a target.", labels=labels)
        attempts = CounterMetricFamily(
            "limner_route_attempts", "Attempts of route jobs on a target, by status.", labels=[*labels, "status"]
        )
        for route in routes_view(self.engines, self.catalog):
            for target in route["targets"]:
                key = [route["id"], target["model"]]
                health = target["health"]
                cooling.add_metric(key, 1.0 if health["cooling_down"] else 0.0)
                failures.add_metric(key, float(health["failures"]))
                if target["p50_s"] is not None:
                    p50.add_metric(key, float(target["p50_s"]))
                for status, n in sorted(target["attempts"].items()):
                    attempts.add_metric([*key, status], n)
        yield cooling
        yield failures
        yield p50
        yield attempts
