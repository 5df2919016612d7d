"""The benchmark maths: percentiles, latency summaries and commit-to-visible matching."""

from __future__ import annotations

import pytest

from bench.common import latency_summary, percentile, ratio
from bench.freshness import visible_latencies_ms


def test_percentile_of_one_value_is_that_value() -> None:
    assert percentile([7.0], 0.99) == 7.0


def test_percentile_interpolates_between_ranks_like_numpy() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    assert percentile(values, 0.5) == 2.5
    assert percentile(values, 0.0) == 1.0
    assert percentile(values, 1.0) == 4.0
    assert percentile(values, 0.9) == pytest.approx(3.7)


def test_percentile_does_not_depend_on_input_order() -> None:
    assert percentile([5.0, 1.0, 3.0], 0.5) == 3.0


def test_p99_of_a_hundred_values_sits_just_below_the_largest() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.99) == pytest.approx(99.01)


def test_percentile_refuses_no_values_and_fractions_outside_zero_to_one() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 0.5)
    with pytest.raises(ValueError, match=r"within 0\.\.1"):
        percentile([1.0], 99)


def test_latency_summary_reports_count_percentiles_and_a_monotonic_curve() -> None:
    summary = latency_summary([float(v) for v in range(1, 1001)])
    assert summary["count"] == 1000
    assert summary["p50_ms"] == pytest.approx(500.5)
    assert summary["max_ms"] == 1000.0
    curve = [ms for _, ms in summary["distribution"]]
    assert curve == sorted(curve)
    assert summary["distribution"][0] == [0.0, 1.0]


def test_latency_summary_of_nothing_says_so() -> None:
    assert latency_summary([]) == {"count": 0}


def test_ratio_is_missing_when_either_side_is() -> None:
    assert ratio(10.0, 4.0) == 2.5
    assert ratio(None, 4.0) is None
    assert ratio(10.0, 0.0) is None


def test_a_write_is_visible_at_the_first_announcement_reaching_its_position() -> None:
    commits = [(10, 1.000), (11, 1.001), (12, 1.002)]
    # The projector applied 10 and 11 in one page, announced at 1.005, and 12 at 1.010.
    announcements = [(11, 1.005), (12, 1.010)]
    latencies, unseen = visible_latencies_ms(commits, announcements)
    assert latencies == pytest.approx([5.0, 4.0, 8.0])
    assert unseen == 0


def test_writes_never_announced_are_counted_not_dropped_silently() -> None:
    latencies, unseen = visible_latencies_ms([(5, 1.0), (9, 1.0)], [(6, 1.002)])
    assert latencies == pytest.approx([2.0])
    assert unseen == 1


def test_a_repeated_lower_announcement_does_not_make_a_write_look_later() -> None:
    # A second projector re-announcing an older position must not be matched.
    latencies, _ = visible_latencies_ms([(7, 2.0)], [(8, 2.001), (6, 2.5), (9, 2.6)])
    assert latencies == pytest.approx([1.0])


def test_an_announcement_racing_ahead_of_the_commit_timestamp_counts_as_zero() -> None:
    # The producer thread may note its commit time after the projector already announced.
    latencies, _ = visible_latencies_ms([(3, 5.000)], [(3, 4.999)])
    assert latencies == [0.0]
