"""Summaries of py-spy's collapsed stacks, as the benchmark report prints them."""

from __future__ import annotations

import pytest

from bench.common_profile import frame_name, package_of, parse_collapsed, summarise

SITE = "/srv/app/.venv/lib/python3.11/site-packages"
COLLAPSED = "\n".join(
    [
        # 60 samples: our projector waiting on a Redis reply
        f'process 1:"python -m bench.projection";run (/srv/app/projections/projector.py:120);'
        f"execute ({SITE}/redis/client.py:1500);read_response ({SITE}/redis/connection.py:600)"
        " 60",
        # 30 samples: decoding events in our code
        'process 1:"python -m bench.projection";run (/srv/app/projections/projector.py:120);'
        "decode (/srv/app/projections/events.py:80) 30",
        # 10 samples: the library reading notifications
        f"select_notifications ({SITE}/eventsourcing/postgres.py:900) 10",
        "a malformed line without a count",
    ]
)


def test_collapsed_stacks_drop_the_process_frame_and_keep_counts() -> None:
    stacks = parse_collapsed(COLLAPSED)
    assert [count for _, count in stacks] == [60, 30, 10]
    assert stacks[0][0][0].startswith("run (")


def test_frame_names_lose_line_numbers_and_environment_paths() -> None:
    assert frame_name(f"execute ({SITE}/redis/client.py:1500)") == "execute (redis/client.py)"
    assert (
        frame_name("decode (/srv/app/projections/events.py:80)") == "decode (projections/events.py)"
    )


def test_frames_are_attributed_to_their_top_level_package() -> None:
    assert package_of(f"read ({SITE}/redis/connection.py:1)") == "redis"
    assert package_of("decode (/srv/app/projections/events.py:80)") == "projections"
    assert package_of("_load (<frozen importlib._bootstrap>:1)") == "python internals"


def test_summary_ranks_self_time_and_counts_callers_in_total_time() -> None:
    summary = summarise(COLLAPSED)
    assert summary["samples"] == 100
    top = summary["top"][0]
    assert top["function"] == "read_response (redis/connection.py)"
    assert top["self_pct"] == pytest.approx(60.0)
    callers = {row["function"]: row["total_pct"] for row in summary["top_total"]}
    assert callers["execute (redis/client.py)"] == pytest.approx(60.0)
    # On 90% of the stacks: an entry point, not a finding.
    assert "run (projections/projector.py)" not in callers
    assert summary["packages"][0] == {"package": "redis", "self_pct": 60.0}
    assert "redis 60%" in summary["reading"]


def test_summary_of_an_empty_profile_has_no_rows() -> None:
    assert summarise("") == {"samples": 0, "top": [], "top_total": [], "packages": []}


def test_start_up_imports_are_left_out_of_the_shares() -> None:
    collapsed = (
        "<module> (app.py:1);_find_and_load (<frozen importlib._bootstrap>:1176) 50\n"
        f"serve (/srv/app/read_side/api.py:10);send ({SITE}/uvicorn/impl.py:5) 50\n"
    )
    summary = summarise(collapsed)
    assert summary["samples"] == 50
    assert summary["top"][0]["self_pct"] == 100.0


def test_only_the_named_process_is_kept_when_asked() -> None:
    collapsed = (
        'process 1:"python -m bench.read_path";wait (/srv/app/bench/read_path.py:3) 70\n'
        'process 2:"python customers read-api";reply (/srv/app/read_side/api.py:9) 30\n'
    )
    assert summarise(collapsed, process="read-api")["top"] == [
        {"function": "reply (read_side/api.py)", "self_pct": 100.0, "total_pct": 100.0}
    ]
