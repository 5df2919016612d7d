"""The benchmarks' customers: `customers demo`'s generator, every customer complete."""

from __future__ import annotations

from datetime import date

from runtime.demo_data import SampleData

TODAY = date(2025, 1, 1)


def test_complete_customers_have_full_profiles_logins_and_orders_and_stay_active() -> None:
    sample = SampleData(7, TODAY, complete=True)
    plans = [sample.customer(customer_id) for customer_id in range(1, 2000)]
    assert all(value is not None for plan in plans for value in plan.profile.values())
    assert min(plan.logins for plan in plans) >= 1
    assert min(len(plan.orders) for plan in plans) >= 1
    assert not any(plan.deactivated for plan in plans)
    # Still the demo's mix: some cancelled and some refunded orders.
    orders = [order for plan in plans for order in plan.orders]
    assert any(order.cancelled for order in orders)
    assert any(order.refunds for order in orders)


def test_the_demo_stream_is_the_same_without_the_option() -> None:
    default = SampleData(7, TODAY)
    explicit = SampleData(7, TODAY, complete=False)
    plans = [default.customer(n) for n in range(1, 500)]
    assert plans == [explicit.customer(n) for n in range(1, 500)]
    assert any(plan.deactivated for plan in plans)
    assert any(value is None for plan in plans for value in plan.profile.values())
