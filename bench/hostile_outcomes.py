"""What the phases and the hostile clients met, added up; and the rule they are judged by.

Every hostile request must end as refused 4xx with a JSON body, or closed by the server.
"""

from __future__ import annotations

import statistics
from typing import Any

from bench.common import percentile
from bench.hostile_cases import CaseTally, SlowlorisTally


def tally_summary(tallies: dict[str, CaseTally], seconds: float) -> dict[str, Any]:
    by_status: dict[str, int] = {}
    answer_ms: list[float] = []
    for tally in tallies.values():
        answer_ms += tally.answer_ms
        for outcome, count in tally.statuses.items():
            by_status[outcome] = by_status.get(outcome, 0) + count
    sent = sum(tally.sent for tally in tallies.values())
    answered = {int(s): n for s, n in by_status.items() if s.isdigit()}
    non_json = sum(tally.non_json for tally in tallies.values())
    return {
        "sent": sent,
        "per_s": round(sent / seconds, 1) if seconds else None,
        "by_status": dict(sorted(by_status.items())),
        "answered_4xx": sum(n for s, n in answered.items() if 400 <= s < 500),
        "server_errors_5xx": sum(n for s, n in answered.items() if s >= 500),
        "other_answers": sum(n for s, n in answered.items() if s < 400),
        "non_json_answers": non_json,
        "closed_unanswered": by_status.get("closed", 0),
        "hung": by_status.get("hung", 0),
        "refused_connections": by_status.get("refused", 0),
        "answer_ms": {
            "p50": round(percentile(answer_ms, 0.5), 2) if answer_ms else None,
            "p99": round(percentile(answer_ms, 0.99), 2) if answer_ms else None,
            "max": round(max(answer_ms), 2) if answer_ms else None,
        },
        "by_case": {
            name: {
                "sent": tally.sent,
                "statuses": dict(sorted(tally.statuses.items())),
                "non_json": tally.non_json,
                "max_ms": round(max(tally.answer_ms), 2),
            }
            for name, tally in tallies.items()
        },
    }


def slowloris_summary(tally: SlowlorisTally, connections: int) -> dict[str, Any]:
    ages = tally.seconds_to_close
    return {
        "connections": connections,
        "opened": tally.opened,
        "closed_by_server": tally.closed_by_server,
        "answered": tally.answered,
        "seconds_to_close_median": round(statistics.median(ages), 2) if ages else None,
        "seconds_to_close_max": round(max(ages), 2) if ages else None,
        "open_at_end": tally.open_at_end,
        "refused": tally.refused,
    }


def refused(outcome: str, json_body: bool) -> bool:
    """Whether a hostile request ended as it must: 4xx with a JSON body, or closed."""
    if outcome == "closed":
        return True
    return outcome.isdigit() and 400 <= int(outcome) < 500 and json_body


def merge_hostile(phases: list[dict[str, Any]], warm_up: dict[str, Any]) -> dict[str, Any]:
    """The hostile requests of every hostile phase added up, and the warm-up's judged too."""
    total: dict[str, Any] = {"sent": 0, "by_status": {}}
    counters = (
        "answered_4xx", "server_errors_5xx", "other_answers", "non_json_answers",
        "closed_unanswered", "hung", "refused_connections",
    )  # fmt: skip
    for name in counters:
        total[name] = 0
    for entry in phases:
        requests = entry["hostile_requests"]
        total["sent"] += requests["sent"]
        for name in counters:
            total[name] += requests[name]
        for status, count in requests["by_status"].items():
            total["by_status"][status] = total["by_status"].get(status, 0) + count
    total["max_answer_ms"] = max(
        (entry["hostile_requests"]["answer_ms"]["max"] or 0 for entry in phases), default=None
    )
    # The requirement: every hostile request refused 4xx with JSON, or closed by the server.
    bad = ("server_errors_5xx", "other_answers", "non_json_answers", "hung", "refused_connections")
    warm_up_bad = [
        name for name, answer in warm_up.items() if not refused(answer["status"], answer["json"])
    ]
    total["warm_up_not_refused"] = warm_up_bad
    total["all_refused_or_closed"] = (
        total["sent"] > 0 and not any(total[name] for name in bad) and not warm_up_bad
    )
    return total


def median_phase(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [run[key] for run in runs if run.get(key) is not None]
    return round(statistics.median(values), 2) if values else None


def median_of(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [run["read"][key] for run in runs if run["read"].get(key) is not None]
    return round(statistics.median(values), 3) if values else None


def read_side(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The reads of the quiet (or the hostile) phases: medians over the rounds."""
    return {
        "rps": median_of(runs, "rps"),
        "p50_ms": median_of(runs, "p50_ms"),
        "p90_ms": median_of(runs, "p90_ms"),
        "p99_ms": median_of(runs, "p99_ms"),
        "non_2xx": sum(run["read"]["non_2xx"] for run in runs),
        "timeouts": sum(run["read"].get("timeouts") or 0 for run in runs),
        "server_cpu_s": median_phase(runs, "server_cpu_s"),
        "client_cpu_s": median_phase(runs, "client_cpu_s"),
    }
