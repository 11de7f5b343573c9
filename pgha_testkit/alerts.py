"""Reading a monitored stack's alerts and targets (pgha:monitoring), for tests and `make alerts`.

Alerts come from Alertmanager's API (`/api/v2/alerts`: what an operator is notified of),
scrape health from Prometheus's (`/api/v1/targets`). `AlertWatch` polls fast and remembers
when each alert was first seen, so a fault-to-firing time is measured from the fault, and
an alert that fires for a few seconds only (a patroni failover's writerless window) is
not missed between two looks.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from pgha_testkit.poll import NotYet, wait_until


def firing(alertmanager_url: str) -> list[dict[str, Any]]:
    """Every alert Alertmanager holds as active (not resolved, silenced or inhibited)."""
    res = httpx.get(
        alertmanager_url.rstrip("/") + "/api/v2/alerts",
        params={"active": "true", "silenced": "false", "inhibited": "false"},
        timeout=5,
    )
    res.raise_for_status()
    return [a for a in res.json() if a["status"]["state"] == "active"]


def matches(alert: Mapping[str, Any], name: str, labels: Mapping[str, str]) -> bool:
    got = alert["labels"]
    return bool(got.get("alertname") == name and all(got.get(k) == v for k, v in labels.items()))


def targets(prometheus_url: str) -> list[dict[str, Any]]:
    res = httpx.get(prometheus_url.rstrip("/") + "/api/v1/targets", timeout=5)
    res.raise_for_status()
    return list(res.json()["data"]["activeTargets"])


@dataclass
class AlertWatch:
    """Polls Alertmanager from `started` on; `first_seen[name]` is seconds after it."""

    alertmanager_url: str
    started: float = field(default_factory=time.monotonic)
    first_seen: dict[str, float] = field(default_factory=dict)
    last: list[dict[str, Any]] = field(default_factory=list)

    def look(self) -> list[dict[str, Any]]:
        self.last = firing(self.alertmanager_url)
        now = time.monotonic() - self.started
        for alert in self.last:
            self.first_seen.setdefault(alert["labels"]["alertname"], now)
        return self.last

    def active(self, name: str, **labels: str) -> bool:
        return any(matches(a, name, labels) for a in self.last)

    def wait_firing(self, name: str, timeout: float, **labels: str) -> float:
        """Seconds from `started` until `name` (with `labels`) is active in Alertmanager."""

        def check() -> bool:
            self.look()
            if not self.active(name, **labels):
                raise NotYet(f"active: {sorted({a['labels']['alertname'] for a in self.last})}")
            return True

        wait_until(check, timeout, f"alert {name} {labels or ''} firing", interval=0.25)
        return time.monotonic() - self.started

    def wait_resolved(self, name: str, timeout: float, **labels: str) -> float:
        def check() -> bool:
            self.look()
            return not self.active(name, **labels)

        wait_until(check, timeout, f"alert {name} {labels or ''} resolved", interval=0.5)
        return time.monotonic() - self.started


def _stack_urls(stack: str) -> dict[str, str]:
    from infra import outputs as out
    from pgha_testkit.stack import StackError, workspace

    raw = {k: v.value for k, v in workspace().stack_outputs(stack).items()}
    if not raw.get(out.PROMETHEUS_URL):
        raise StackError(
            f"stack {stack!r} runs no monitoring: pulumi config set pgha:monitoring true"
        )
    return {
        "prometheus": str(raw[out.PROMETHEUS_URL]),
        "alertmanager": str(raw[out.ALERTMANAGER_URL]),
    }


def overview_url(prometheus_url: str) -> str:
    from infra.monitoring_cfg import OVERVIEW_PATH

    return prometheus_url.rstrip("/") + "/" + OVERVIEW_PATH


def describe(alerts: list[dict[str, Any]]) -> list[str]:
    """One line per alert, most severe first: severity, name, member, since, summary."""
    order = {"critical": 0, "warning": 1}
    lines = []
    for a in sorted(
        alerts,
        key=lambda a: (order.get(a["labels"].get("severity", ""), 2), a["labels"]["alertname"]),
    ):
        labels = a["labels"]
        member = labels.get("node") or labels.get("proxy") or labels.get("route") or "cluster"
        since = a["startsAt"][:19].replace("T", " ")
        summary = a.get("annotations", {}).get("summary", "")
        lines.append(
            f"{labels.get('severity', '?'):8} {labels['alertname']:32} {member:12} "
            f"since {since}Z  {summary}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    """`make alerts` (the firing alerts) and `make dashboard` (the overview's URL)."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["alerts", "dashboard"])
    parser.add_argument("--stack", default="dev")
    args = parser.parse_args(argv)
    urls = _stack_urls(args.stack)
    if args.command == "dashboard":
        print(overview_url(urls["prometheus"]))
        return 0
    lines = describe(firing(urls["alertmanager"]))
    print("\n".join(lines) if lines else "no alert is firing")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
