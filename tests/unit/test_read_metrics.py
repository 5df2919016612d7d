"""The Prometheus text the read side exposes: cumulative buckets, labels, gauges."""

from __future__ import annotations

from read_side.metrics import RequestMetrics


def test_latencies_land_in_cumulative_buckets_per_route_and_status() -> None:
    metrics = RequestMetrics(buckets=(0.001, 0.01))
    metrics.observe("GET", "/api/customers/{customer_id}", 200, 0.0005)
    metrics.observe("GET", "/api/customers/{customer_id}", 200, 0.005)
    metrics.observe("GET", "/api/customers/{customer_id}", 200, 0.5)
    metrics.observe("GET", "/api/customers/{customer_id}", 404, 0.002)
    text = metrics.render().decode()
    labels = 'method="GET",route="/api/customers/{customer_id}",status="200"'
    assert f'http_request_duration_seconds_bucket{{{labels},le="0.001"}} 1\n' in text
    assert f'http_request_duration_seconds_bucket{{{labels},le="0.01"}} 2\n' in text
    assert f'http_request_duration_seconds_bucket{{{labels},le="+Inf"}} 3\n' in text
    assert f"http_request_duration_seconds_count{{{labels}}} 3\n" in text
    assert 'status="404"} 1\n' in text


def test_gauges_are_read_at_scrape_time_and_unknown_ones_left_out() -> None:
    metrics = RequestMetrics()
    value = [7]
    metrics.gauge("projection_position", "Applied position", lambda: value[0])
    metrics.gauge("projection_lag_events", "Lag", lambda: None)
    metrics.gauge("events_total", "Events", lambda: 3, kind="counter")
    value[0] = 9
    text = metrics.render().decode()
    assert "projection_position 9\n" in text
    assert "projection_lag_events" not in text
    assert "# TYPE events_total counter\n" in text
    assert "http_requests_in_flight 0\n" in text


def test_label_values_are_escaped() -> None:
    metrics = RequestMetrics()
    metrics.observe("GET", 'a"b\\c', 200, 0.1)
    assert 'route="a\\"b\\\\c"' in metrics.render().decode()
