"""The audit: an independent replay compared with the live read model; historical state."""

from __future__ import annotations

import io
import json
from decimal import Decimal

import orjson
import pytest
import redis
from rich.console import Console
from typer.testing import CliRunner

from projections.audit import audit
from projections.customer_record import fields_of, orders_field, spent_field
from projections.event_decoding import decode
from projections.projector import Projector
from projections.read_model import Keys
from runtime.cli import app
from runtime.demo_store import append_sample
from tests.support.projection_helpers import customer_service
from write_side.store_adapter.queries import notifications_of_customer


def test_audit_of_a_faithful_read_model_is_clean(cli_env: dict[str, str]) -> None:
    client = redis.Redis.from_url(cli_env["REDIS_URL"])
    keys = Keys(cli_env["REDIS_PREFIX"])
    with customer_service(cli_env["EVENT_STORE_URL"]) as service:
        append_sample(service, 30, seed=23, progress_console=Console(file=io.StringIO()))
        service.issue_api_key("auditor", "staff")
        Projector(service.recorder, client, keys).catch_up()

        report = audit(service.recorder, client, keys)
    assert report.clean
    assert report.customers == 30
    result = CliRunner().invoke(app, ["audit"], env=cli_env)
    assert result.exit_code == 0, result.output
    assert "audit clean: 30 customers" in result.output


def test_audit_catches_a_total_tampered_with_in_redis(cli_env: dict[str, str]) -> None:
    client = redis.Redis.from_url(cli_env["REDIS_URL"])
    keys = Keys(cli_env["REDIS_PREFIX"])
    with customer_service(cli_env["EVENT_STORE_URL"]) as service:
        append_sample(service, 10, seed=29, progress_console=Console(file=io.StringIO()))
        Projector(service.recorder, client, keys).catch_up()
        # Someone adds one cent to customer 4's total behind the projector's back.
        client.hincrby(keys.bucket(1, 4), spent_field(4), 1)

        report = audit(service.recorder, client, keys)
    assert [(d.customer_id, d.field) for d in report.differences] == [(4, "total_spent")]
    result = CliRunner().invoke(app, ["audit"], env=cli_env)
    assert result.exit_code == 1
    assert "total_spent" in result.output
    assert "1 differences" in result.output


def test_audit_does_not_report_changes_a_live_projector_made_after_its_position(
    cli_env: dict[str, str],
) -> None:
    client = redis.Redis.from_url(cli_env["REDIS_URL"])
    keys = Keys(cli_env["REDIS_PREFIX"])
    with customer_service(cli_env["EVENT_STORE_URL"]) as service:
        customer_id = service.register_customer(None, {"first_name": "Mid"}).result["id"]
        Projector(service.recorder, client, keys).catch_up()
        service.place_order(customer_id, Decimal("3.00"))
        # A projector applied the order to the customer but died before recording it.
        crashed = Projector(service.recorder, client, keys, fault=_die_before_position)
        with pytest.raises(RuntimeError):
            crashed.catch_up()

        assert audit(service.recorder, client, keys).clean


def _die_before_position(step: str) -> None:
    if step == "before-position":
        raise RuntimeError("died")


def test_audit_prints_the_state_at_a_past_position_or_time(cli_env: dict[str, str]) -> None:
    with customer_service(cli_env["EVENT_STORE_URL"]) as service:
        customer_id = service.register_customer(None, {"first_name": "Old"}).result["id"]
        placed = service.place_order(customer_id, Decimal("10.00"))
        moment = service.get_order(placed.result["order_id"]).placed_at
        service.place_order(customer_id, Decimal("2.50"))

    runner = CliRunner()
    at_position = runner.invoke(
        app, ["audit", "--customer", str(customer_id), "--position", str(placed.position)],
        env=cli_env,
    )  # fmt: skip
    assert at_position.exit_code == 0, at_position.output
    then = orjson.loads(at_position.stdout)
    assert (then["total_orders"], then["total_spent"]) == (1, "10.00")

    before = runner.invoke(app, ["audit", "--as-of", "2000-01-01T00:00:00Z"], env=cli_env)
    assert before.exit_code == 0
    assert before.stdout == ""
    now = runner.invoke(app, ["audit", "--as-of", moment.isoformat()], env=cli_env)
    assert orjson.loads(now.stdout)["first_name"] == "Old"


def test_auditing_a_customer_nobody_has_says_so_instead_of_clean(
    cli_env: dict[str, str],
) -> None:
    client = redis.Redis.from_url(cli_env["REDIS_URL"])
    keys = Keys(cli_env["REDIS_PREFIX"])
    with customer_service(cli_env["EVENT_STORE_URL"]) as service:
        service.register_customer(None, {"first_name": "Only"})
        Projector(service.recorder, client, keys).catch_up()

    result = CliRunner().invoke(app, ["audit", "--customer", "77"], env=cli_env)
    assert result.exit_code == 2
    assert "customer 77 is neither in the event store" in result.output
    assert "clean" not in result.output


def test_a_position_beyond_the_store_is_refused_rather_than_shown_as_the_present(
    cli_env: dict[str, str],
) -> None:
    with customer_service(cli_env["EVENT_STORE_URL"]) as service:
        written = service.register_customer(None, {"first_name": "Now"})

    beyond = str(written.position + 1)
    result = CliRunner().invoke(app, ["audit", "--position", beyond], env=cli_env)
    assert result.exit_code == 2
    assert f"beyond the event store's last position {written.position}" in result.output
    assert result.stdout == ""  # no document of the present state


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--as-of", "yesterday"], "is not an ISO 8601 datetime"),
        (["--as-of", "2026-01-01T00:00:00"], "needs a timezone"),
        (["--position", "3", "--as-of", "2026-01-01T00:00:00Z"], "not both"),
        (["--customer", "0"], "positive integer"),
    ],
)
def test_bad_audit_arguments_are_one_line_errors_with_exit_code_2(
    cli_env: dict[str, str], arguments: list[str], message: str
) -> None:
    result = CliRunner().invoke(app, ["audit", *arguments], env=cli_env)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_an_empty_event_store_is_not_called_clean_unless_asked(cli_env: dict[str, str]) -> None:
    # Most likely the wrong EVENT_STORE_URL or DATA_DIR: "clean: 0 customers" would hide it.
    result = CliRunner().invoke(app, ["audit"], env=cli_env)
    assert result.exit_code == 1
    assert "holds no events" in result.output
    assert "clean" not in result.output

    allowed = CliRunner().invoke(app, ["audit", "--allow-empty"], env=cli_env)
    assert allowed.exit_code == 0, allowed.output
    assert "audit clean: 0 customers" in allowed.output


def test_a_large_store_is_audited_in_passes_with_the_same_verdict(
    cli_env: dict[str, str],
) -> None:
    # Memory holds one share of the customers at a time, whatever the store's size.
    client = redis.Redis.from_url(cli_env["REDIS_URL"])
    keys = Keys(cli_env["REDIS_PREFIX"])
    with customer_service(cli_env["EVENT_STORE_URL"]) as service:
        append_sample(service, 25, seed=31, progress_console=Console(file=io.StringIO()))
        Projector(service.recorder, client, keys).catch_up()
        passes: set[tuple[int, int]] = set()

        def seen(share: int, shares: int, position: int, upto: int) -> None:
            passes.add((share, shares))

        clean = audit(service.recorder, client, keys, max_customers=4, progress=seen)
        assert clean.clean
        assert clean.customers == 25
        assert {shares for _, shares in passes} == {7}  # 25 customers, 4 per pass

        client.hincrby(keys.bucket(1, 11), orders_field(11), 1)
        client.hdel(keys.bucket(1, 18), *fields_of(18))
        tampered = audit(service.recorder, client, keys, max_customers=4)
    assert {(d.customer_id, d.field) for d in tampered.differences} == {
        (11, "total_orders"),
        (18, "customer"),
    }
    assert tampered.customers == 25


def test_audit_json_is_one_object_and_plain_progress_lines_go_to_stderr(
    cli_env: dict[str, str],
) -> None:
    client = redis.Redis.from_url(cli_env["REDIS_URL"])
    keys = Keys(cli_env["REDIS_PREFIX"])
    with customer_service(cli_env["EVENT_STORE_URL"]) as service:
        append_sample(service, 5, seed=37, progress_console=Console(file=io.StringIO()))
        Projector(service.recorder, client, keys).catch_up()
    client.hincrby(keys.bucket(1, 2), spent_field(2), 5)

    result = CliRunner().invoke(app, ["audit", "--json"], env=cli_env)
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["clean"] is False
    assert report["differences_found"] == 1
    assert report["differences"][0]["customer_id"] == 2
    assert report["differences"][0]["field"] == "total_spent"
    # Not a terminal: plain lines, no progress bar drawing.
    assert "audit: pass 1/1" in result.stderr
    assert "\x1b[" not in result.stderr


def test_one_customer_is_audited_from_the_events_naming_it_alone(
    event_store_url: str, redis_url: str, redis_prefix: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    keys = Keys(redis_prefix)
    with customer_service(event_store_url) as service:
        for customer_id in (7, 17, 70, 77):  # ids that contain one another's digits
            service.register_customer(customer_id, {"first_name": f"C{customer_id}"})
            service.place_order(customer_id, Decimal("1.00"))
        service.place_order(7, Decimal("2.00"))
        Projector(service.recorder, client, keys).catch_up()

        mentions = notifications_of_customer(service.recorder, 7)
        decoded = [decode(n) for n in mentions]
        assert [getattr(c, "customer_id", None) for c in decoded] == [7, 7, 7]
        assert audit(service.recorder, client, keys, customer_id=7).clean

        client.hincrby(keys.bucket(1, 7), spent_field(7), 1)
        report = audit(service.recorder, client, keys, customer_id=7)
    assert [(d.customer_id, d.field) for d in report.differences] == [(7, "total_spent")]
