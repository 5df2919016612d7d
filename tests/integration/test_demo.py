"""`customers demo`: realistic, reproducible sample histories in a real event store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal

import pytest
from typer.testing import CliRunner

from runtime.cli import app
from runtime.demo_data import SampleData
from runtime.demo_store import append_sample, first_free_customer_id
from runtime.settings import event_store_env
from write_side.application import CustomerService
from write_side.domain.customer import Customer
from write_side.domain.order import Order
from write_side.schemas import RegisterCustomer

SEED = 7


@pytest.fixture
def service(event_store_url: str) -> Iterator[CustomerService]:
    app_service = CustomerService(event_store_env(event_store_url))
    yield app_service
    app_service.close()


def stored_events(service: CustomerService) -> list[object]:
    return [
        service.mapper.to_domain_event(notification)
        for notification in service.recorder.select_notifications(1, 1_000_000)
    ]


def test_same_seed_gives_the_same_customers_and_orders() -> None:
    first = SampleData(SEED, today=date(2025, 1, 1))
    second = SampleData(SEED, today=date(2025, 1, 1))
    assert [first.customer(n) for n in range(1, 50)] == [second.customer(n) for n in range(1, 50)]


def test_sample_profiles_pass_the_producers_validation() -> None:
    sample = SampleData(SEED, today=date.today())
    for customer_id in range(1, 300):
        plan = sample.customer(customer_id)
        accepted = RegisterCustomer.model_validate({"id": customer_id, **plan.profile})
        assert accepted.profile(only_set=False) == plan.profile


def test_sample_money_is_whole_cents_and_refunds_stay_within_the_amount() -> None:
    sample = SampleData(SEED, today=date.today())
    orders = [order for n in range(1, 500) for order in sample.customer(n).orders]
    assert orders, "the sample has orders"
    for order in orders:
        assert order.amount == order.amount.quantize(Decimal("0.01")) > 0
        assert sum(order.refunds, Decimal(0)) <= order.amount
    assert any(order.cancelled for order in orders)
    assert any(order.refunds for order in orders)


def test_demo_appends_whole_histories_that_replay_into_consistent_aggregates(
    service: CustomerService,
) -> None:
    # Given an empty store, when 40 sample customers are appended
    tally = append_sample(service, 40, SEED)

    # Then the store holds exactly the events the tally counts, in one unbroken sequence
    events = stored_events(service)
    assert len(events) == tally.events == tally.last_position
    registered = [e for e in events if isinstance(e, Customer.Registered)]
    assert sorted(e.customer_id for e in registered) == list(range(1, 41))
    assert tally.customers == 40
    assert tally.orders == sum(isinstance(e, Order.Placed) for e in events)
    assert tally.cancellations == sum(isinstance(e, Order.Cancelled) for e in events)
    assert tally.refunds == sum(isinstance(e, Order.Refunded) for e in events)
    assert tally.logins == sum(isinstance(e, Customer.LoggedIn) for e in events)

    # And every customer's orders come after its registration and before any deactivation
    seen_registered: set[int] = set()
    deactivated: set[int] = set()
    for event in events:
        if isinstance(event, Customer.Registered):
            seen_registered.add(event.customer_id)
        elif isinstance(event, Customer.Deactivated):
            deactivated.add(event.customer_id)
        elif isinstance(event, Order.Placed):
            assert event.customer_id in seen_registered
            assert event.customer_id not in deactivated

    # And the aggregates load back through the write side with the sample's amounts
    sample = SampleData(SEED, today=date.today())
    for customer_id in range(1, 41):
        plan = sample.customer(customer_id)
        assert service.get_customer(customer_id).is_active is not plan.deactivated
        for order_plan in plan.orders:
            order = service.get_order(order_plan.order_id)
            assert order.amount == order_plan.amount
            assert order.is_cancelled is order_plan.cancelled


def test_demo_appends_after_the_customers_already_registered(service: CustomerService) -> None:
    # Given customers 1 to 3 registered by a producer
    for customer_id in (1, 2, 3):
        service.register_customer(customer_id, {"first_name": f"P{customer_id}"})

    # When the demo adds five more
    append_sample(service, 5, SEED)

    # Then they take ids 4 to 8, and the producer's customers are untouched
    assert first_free_customer_id(service) == 9
    assert [service.get_customer(n).profile["first_name"] for n in (1, 2, 3)] == [
        "P1",
        "P2",
        "P3",
    ]
    sample = SampleData(SEED, today=date.today())
    expected = [sample.customer(n).profile for n in range(4, 9)]
    assert [service.get_customer(n).profile for n in range(4, 9)] == expected


def test_demo_command_prints_a_summary_and_if_empty_leaves_a_filled_store_alone(
    event_store_url: str,
) -> None:
    runner = CliRunner()
    env = {"EVENT_STORE_URL": event_store_url}

    # When the command runs on an empty store, it reports what it added
    first = runner.invoke(app, ["demo", "--customers", "12"], env=env)
    assert first.exit_code == 0, first.output
    assert "Added 12 customers" in first.output

    # When it runs again with --if-empty, it adds nothing and says so
    again = runner.invoke(app, ["demo", "--customers", "12", "--if-empty"], env=env)
    assert again.exit_code == 0, again.output
    assert "no sample data added" in again.output
    service = CustomerService(event_store_env(event_store_url))
    try:
        assert first_free_customer_id(service) == 13
    finally:
        service.close()


def test_demo_command_refuses_a_bad_customer_count() -> None:
    result = CliRunner().invoke(app, ["demo", "--customers", "0"])
    assert result.exit_code != 0
    assert "Traceback" not in result.output
