"""The producers' HTTP API (contract section 3), on a real ASGI app over both real stores."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient

from runtime.container import Container
from runtime.http import ServiceApp, build_app
from runtime.settings import Settings
from tests.conftest import small_pool
from tests.support.fast_paths import framework_alone
from write_side.application import CustomerService
from write_side.domain.order import Order


@dataclass
class WriteApi:
    """A write app over a fresh store, and a producer key for it."""

    client: TestClient
    service: CustomerService
    producer_key: str

    def auth(self, key: str | None = None, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Token {key or self.producer_key}", **extra}

    def post(self, path: str, body: Any = None, **headers: str) -> Any:
        return self.client.post(path, json=body, headers=self.auth(**headers))

    def post_raw(self, path: str, text: str) -> Any:
        """POST JSON text exactly as written, so numbers keep their literal form."""
        headers = self.auth(**{"Content-Type": "application/json"})
        return self.client.post(path, content=text.encode(), headers=headers)

    def register(self, **fields: Any) -> int:
        response = self.post("/api/customers", fields)
        assert response.status_code == 201, response.text
        customer_id: int = response.json()["id"]
        return customer_id

    def place_order(self, customer_id: int, amount: str = "10.00", **fields: Any) -> str:
        response = self.post(
            "/api/orders", {"customer_id": customer_id, "amount": amount, **fields}
        )
        assert response.status_code == 201, response.text
        order_id: str = response.json()["order_id"]
        return order_id

    def placed_orders(self) -> int:
        return len(
            self.service.recorder.select_notifications(1, 100_000, topics=[Order.Placed.TOPIC])
        )

    def head(self) -> int:
        return self.service.recorder.max_notification_id() or 0


@pytest.fixture
def container(event_store_url: str) -> Iterator[Container]:
    container = Container(Settings(EVENT_STORE_URL=small_pool(event_store_url)))
    yield container
    container.close()


@pytest.fixture
def api(container: Container) -> Iterator[WriteApi]:
    issued = container.write_service.issue_api_key("orders-service", "producer")
    app = build_app(container, write=True, read=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield WriteApi(client, container.write_service, issued.key)


# Registration


def test_registration_without_id_allocates_the_next_free_integer(api: WriteApi) -> None:
    api.register(id=1)
    api.register(id=2)
    response = api.post("/api/customers", {"first_name": "Ann"})
    assert response.status_code == 201
    assert response.json() == {"id": 3, "position": api.head()}


def test_registration_with_an_id_keeps_it_and_stores_the_trimmed_profile(api: WriteApi) -> None:
    response = api.post(
        "/api/customers",
        {
            "id": 42,
            "first_name": "  Ann ",
            "last_name": "Lee",
            "email": "ann@example.com",
            "mobile_number": "+98 912 000 0000",
            "national_code": " 0012345678 ",
            "birth_date": "1990-02-28",
            "gender": "female",
            "notes": " prefers email ",
        },
    )
    assert response.status_code == 201
    assert response.json()["id"] == 42
    customer = api.service.get_customer(42)
    assert customer.profile == {
        "first_name": "Ann",
        "last_name": "Lee",
        "email": "ann@example.com",
        "mobile_number": "+98 912 000 0000",
        "national_code": "0012345678",
        "birth_date": "1990-02-28",
        "gender": "female",
        "notes": "prefers email",
    }
    assert customer.is_active


def test_notes_may_span_lines_and_hold_tabs(api: WriteApi) -> None:
    response = api.post("/api/customers", {"id": 43, "notes": "gate code:\t4711\nring twice"})
    assert response.status_code == 201
    assert api.service.get_customer(43).profile["notes"] == "gate code:\t4711\nring twice"


def test_registering_a_taken_id_is_a_conflict(api: WriteApi) -> None:
    api.register(id=7)
    response = api.post("/api/customers", {"id": 7, "first_name": "Bob"})
    assert response.status_code == 409
    assert response.json() == {"detail": "Customer 7 is already registered."}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("first_name", "x" * 151),
        ("last_name", "   "),
        ("first_name", "Ann\u0000"),
        ("last_name", "Lee\u001b[2J"),
        ("national_code", "12\n34"),
        ("notes", "fine\u0000"),
        ("notes", "n" * 2001),
        ("birth_date", (datetime.now(UTC).date() + timedelta(days=2)).isoformat()),
        ("birth_date", "2023-02-30"),
        ("email", "not-an-address"),
        ("gender", "other"),
        ("id", 0),
        ("id", "5"),
        ("id", 2**63),
        ("nickname", "Al"),
    ],
)
def test_registration_with_an_invalid_field_is_refused_naming_the_field(
    api: WriteApi, field: str, value: Any
) -> None:
    response = api.post("/api/customers", {field: value})
    assert response.status_code == 422
    assert [error["loc"] for error in response.json()["detail"]] == [["body", field]]
    assert api.head() == 1  # only the key's event; nothing appended


def test_notes_of_exactly_2000_characters_and_names_of_150_are_accepted(api: WriteApi) -> None:
    customer_id = api.register(first_name="x" * 150, notes="n" * 2000)
    assert api.service.get_customer(customer_id).profile["notes"] == "n" * 2000


# Profile updates


def test_a_profile_update_changes_the_named_fields_and_null_clears_one(api: WriteApi) -> None:
    customer_id = api.register(first_name="Ann", email="ann@example.com", gender="female")
    response = api.client.patch(
        f"/api/customers/{customer_id}",
        json={"last_name": "Lee", "email": None},
        headers=api.auth(),
    )
    assert response.status_code == 200
    assert response.json() == {"id": customer_id, "position": api.head()}
    profile = api.service.get_customer(customer_id).profile
    assert (profile["first_name"], profile["last_name"], profile["email"]) == ("Ann", "Lee", None)
    assert profile["gender"] == "female"


def test_a_profile_update_that_changes_nothing_answers_the_latest_position(
    api: WriteApi,
) -> None:
    customer_id = api.register(first_name="Ann")
    before = api.head()
    response = api.client.patch(
        f"/api/customers/{customer_id}", json={"first_name": " Ann "}, headers=api.auth()
    )
    assert response.status_code == 200
    assert response.json() == {"id": customer_id, "position": before}
    assert api.head() == before


def test_updating_an_unknown_customer_is_not_found(api: WriteApi) -> None:
    response = api.client.patch("/api/customers/99", json={"first_name": "A"}, headers=api.auth())
    assert response.status_code == 404
    assert response.json() == {"detail": "Customer not found."}


def test_an_invalid_profile_update_is_refused(api: WriteApi) -> None:
    customer_id = api.register()
    response = api.client.patch(
        f"/api/customers/{customer_id}", json={"gender": "unknown"}, headers=api.auth()
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "gender"]


# Logins and status


def test_a_login_without_a_time_is_recorded_now(api: WriteApi) -> None:
    customer_id = api.register()
    before = datetime.now(UTC)
    response = api.post(f"/api/customers/{customer_id}/logins")
    assert response.status_code == 200
    assert response.json() == {"position": api.head()}
    last_login = api.service.get_customer(customer_id).last_login
    assert last_login is not None
    assert before <= last_login <= datetime.now(UTC)


def test_the_latest_login_wins_whatever_order_logins_arrive_in(api: WriteApi) -> None:
    customer_id = api.register()
    api.post(f"/api/customers/{customer_id}/logins", {"at": "2026-03-02T10:00:00+00:00"})
    api.post(f"/api/customers/{customer_id}/logins", {"at": "2026-03-01T10:00:00+00:00"})
    last_login = api.service.get_customer(customer_id).last_login
    assert last_login == datetime(2026, 3, 2, 10, tzinfo=UTC)


def test_a_login_time_without_a_timezone_is_refused(api: WriteApi) -> None:
    customer_id = api.register()
    response = api.post(f"/api/customers/{customer_id}/logins", {"at": "2026-03-02T10:00:00"})
    assert response.status_code == 422


def test_a_login_for_an_unknown_customer_is_not_found(api: WriteApi) -> None:
    assert api.post("/api/customers/5/logins").status_code == 404


def test_deactivation_and_reactivation_toggle_and_refuse_repeats(api: WriteApi) -> None:
    customer_id = api.register()
    deactivated = api.post(f"/api/customers/{customer_id}/deactivate")
    assert deactivated.status_code == 200
    assert deactivated.json() == {"position": api.head()}
    again = api.post(f"/api/customers/{customer_id}/deactivate")
    assert (again.status_code, again.json()) == (
        409,
        {"detail": "Customer is already deactivated."},
    )
    assert api.post(f"/api/customers/{customer_id}/reactivate").status_code == 200
    assert api.service.get_customer(customer_id).is_active
    again = api.post(f"/api/customers/{customer_id}/reactivate")
    assert (again.status_code, again.json()) == (409, {"detail": "Customer is already active."})


@pytest.mark.parametrize("action", ["deactivate", "reactivate"])
def test_status_changes_for_an_unknown_customer_are_not_found(api: WriteApi, action: str) -> None:
    assert api.post(f"/api/customers/123/{action}").status_code == 404


# Orders


def test_placing_an_order_answers_its_id_and_position(api: WriteApi) -> None:
    customer_id = api.register()
    response = api.post(
        "/api/orders", {"customer_id": customer_id, "amount": "12.34", "order_id": "A-1"}
    )
    assert response.status_code == 201
    assert response.json() == {"order_id": "A-1", "position": api.head()}
    order = api.service.get_order("A-1")
    assert (order.customer_id, order.amount) == (customer_id, Decimal("12.34"))


@pytest.mark.parametrize(
    ("json_number", "expected"),
    [("0.1", "0.10"), ("1e-1", "0.10"), ("7", "7.00"), ("1000000000000", "1000000000000.00")],
)
def test_a_json_number_amount_is_read_exactly_from_its_text(
    api: WriteApi, json_number: str, expected: str
) -> None:
    customer_id = api.register()
    response = api.post_raw(
        "/api/orders", f'{{"customer_id": {customer_id}, "amount": {json_number}}}'
    )
    assert response.status_code == 201, response.text
    amount = api.service.get_order(response.json()["order_id"]).amount
    assert str(amount) == expected


@pytest.mark.parametrize(
    "amount_json",
    [
        "0",
        "-1",
        '"-0.50"',
        "0.001",
        '"0.001"',
        '"1000000000000.01"',
        "1e400",
        '"123456789012345678901234567890.123"',
        "true",
        "null",
        '"abc"',
        '"1_000"',
        '"NaN"',
        '"1e2"',
        "[1]",
    ],
)
def test_an_amount_that_is_not_a_positive_two_place_bounded_decimal_is_refused(
    api: WriteApi, amount_json: str
) -> None:
    customer_id = api.register()
    response = api.post_raw(
        "/api/orders", f'{{"customer_id": {customer_id}, "amount": {amount_json}}}'
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "amount"]
    assert api.placed_orders() == 0


def test_an_order_with_an_unknown_field_is_refused(api: WriteApi) -> None:
    customer_id = api.register()
    response = api.post("/api/orders", {"customer_id": customer_id, "amount": "1", "tip": "1"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "tip"]


def test_an_order_for_an_unknown_customer_is_not_found(api: WriteApi) -> None:
    response = api.post("/api/orders", {"customer_id": 404, "amount": "1.00"})
    assert (response.status_code, response.json()) == (404, {"detail": "Customer not found."})
    assert api.placed_orders() == 0


def test_a_deactivated_customer_cannot_place_orders(api: WriteApi) -> None:
    customer_id = api.register()
    api.post(f"/api/customers/{customer_id}/deactivate")
    response = api.post("/api/orders", {"customer_id": customer_id, "amount": "1.00"})
    assert response.status_code == 409
    assert response.json() == {"detail": "Customer is deactivated and cannot place orders."}
    assert api.placed_orders() == 0


def test_a_taken_order_id_is_a_conflict(api: WriteApi) -> None:
    customer_id = api.register()
    api.place_order(customer_id, order_id="A-1")
    response = api.post(
        "/api/orders", {"customer_id": customer_id, "amount": "2", "order_id": "A-1"}
    )
    assert (response.status_code, response.json()) == (409, {"detail": "Order A-1 already exists."})
    assert api.placed_orders() == 1


def test_an_order_placed_at_a_given_time_keeps_it(api: WriteApi) -> None:
    customer_id = api.register()
    order_id = api.place_order(customer_id, placed_at="2026-01-31T23:59:00+03:30")
    placed_at = api.service.get_order(order_id).placed_at
    assert placed_at == datetime(2026, 1, 31, 20, 29, tzinfo=UTC)


def test_cancelling_an_order_succeeds_once(api: WriteApi) -> None:
    order_id = api.place_order(api.register())
    cancelled = api.post(f"/api/orders/{order_id}/cancel")
    assert (cancelled.status_code, cancelled.json()) == (200, {"position": api.head()})
    again = api.post(f"/api/orders/{order_id}/cancel")
    assert (again.status_code, again.json()) == (409, {"detail": "Order is cancelled."})


def test_cancelling_an_unknown_order_is_not_found(api: WriteApi) -> None:
    response = api.post("/api/orders/nope/cancel")
    assert (response.status_code, response.json()) == (404, {"detail": "Order not found."})


def test_refunds_add_up_to_at_most_the_amount(api: WriteApi) -> None:
    order_id = api.place_order(api.register(), amount="10.00")
    first = api.post(f"/api/orders/{order_id}/refunds", {"amount": "4.00"})
    assert (first.status_code, first.json()) == (200, {"position": api.head()})
    assert api.post(f"/api/orders/{order_id}/refunds", {"amount": "6.00"}).status_code == 200
    over = api.post(f"/api/orders/{order_id}/refunds", {"amount": "0.01"})
    assert over.status_code == 409
    assert over.json()["detail"].startswith("Refund refused")
    assert api.service.get_order(order_id).refunded == Decimal("10.00")


def test_a_cancelled_order_cannot_be_refunded(api: WriteApi) -> None:
    order_id = api.place_order(api.register())
    api.post(f"/api/orders/{order_id}/cancel")
    response = api.post(f"/api/orders/{order_id}/refunds", {"amount": "1.00"})
    assert (response.status_code, response.json()) == (409, {"detail": "Order is cancelled."})


def test_a_refund_of_an_unknown_order_is_not_found(api: WriteApi) -> None:
    assert api.post("/api/orders/nope/refunds", {"amount": "1.00"}).status_code == 404


@pytest.mark.parametrize("amount", ["0", "0.001", None, True, "ten"])
def test_an_invalid_refund_amount_is_refused(api: WriteApi, amount: Any) -> None:
    order_id = api.place_order(api.register())
    response = api.post(f"/api/orders/{order_id}/refunds", {"amount": amount})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "amount"]


def test_cancelling_after_a_refund_removes_only_what_the_order_still_counted(
    api: WriteApi,
) -> None:
    order_id = api.place_order(api.register(), amount="10.00")
    api.post(f"/api/orders/{order_id}/refunds", {"amount": "2.50"})
    api.post(f"/api/orders/{order_id}/cancel")
    events = api.service.recorder.select_notifications(1, 100, topics=[Order.Cancelled.TOPIC])
    cancelled = api.service.mapper.to_domain_event(events[0])
    assert isinstance(cancelled, Order.Cancelled)
    assert (cancelled.amount, cancelled.refunded) == (Decimal("10.00"), Decimal("2.50"))
    assert cancelled.amount - cancelled.refunded == Decimal("7.50")


def test_every_success_answers_a_position_that_grows_with_each_write(api: WriteApi) -> None:
    customer_id = api.register()
    order_id = api.place_order(customer_id)
    positions = [
        api.post(f"/api/customers/{customer_id}/logins").json()["position"],
        api.client.patch(
            f"/api/customers/{customer_id}", json={"notes": "vip"}, headers=api.auth()
        ).json()["position"],
        api.post(f"/api/orders/{order_id}/refunds", {"amount": "1.00"}).json()["position"],
        api.post(f"/api/orders/{order_id}/cancel").json()["position"],
        api.post(f"/api/customers/{customer_id}/deactivate").json()["position"],
    ]
    assert positions == sorted(set(positions))
    assert positions[-1] == api.head()


def test_a_body_that_is_not_json_is_refused_without_internals(api: WriteApi) -> None:
    # 400, as DRF's parser answers a malformed body (it was FastAPI's 422 before).
    response = api.post_raw("/api/orders", "{not json")
    assert response.status_code == 400
    assert response.json()["detail"].startswith("Malformed JSON:")
    assert "Traceback" not in response.text


# Authentication and roles (DRF's TokenAuthentication wording)


@pytest.mark.parametrize(
    ("authorization", "detail"),
    [
        (None, "Authentication credentials were not provided."),
        ("Bearer abc", "Authentication credentials were not provided."),
        ("Token", "Invalid token header. No credentials provided."),
        ("Token a b", "Invalid token header. Token string should not contain spaces."),
        ("Token unknown-key", "Invalid token."),
    ],
)
@pytest.mark.parametrize(
    ("path", "body"),
    [("/api/customers", {}), ("/api/orders", {"customer_id": 1, "amount": "1.00"})],
)
def test_a_missing_or_bad_token_is_refused_as_drf_does(
    api: WriteApi, authorization: str | None, detail: str, path: str, body: Any
) -> None:
    api.register(id=1)
    before = api.head()
    headers = {} if authorization is None else {"Authorization": authorization}
    response = api.client.post(path, json=body, headers=headers)
    assert response.status_code == 401
    assert response.json() == {"detail": detail}
    assert response.headers["WWW-Authenticate"] == "Token"
    assert api.head() == before


def test_a_revoked_key_is_refused(api: WriteApi) -> None:
    revoked = api.service.issue_api_key("old-service", "producer").key
    api.service.revoke_api_key("old-service")
    response = api.post("/api/customers", {}, Authorization=f"Token {revoked}")
    assert (response.status_code, response.json()) == (401, {"detail": "Invalid token."})
    assert response.headers["WWW-Authenticate"] == "Token"


@pytest.mark.parametrize("scheme", ["token", "TOKEN", "ToKeN"])
def test_the_scheme_word_is_case_insensitive(api: WriteApi, scheme: str) -> None:
    response = api.client.post(
        "/api/customers", json={}, headers={"Authorization": f"{scheme} {api.producer_key}"}
    )
    assert response.status_code == 201


def test_an_admin_key_may_write(api: WriteApi) -> None:
    admin = api.service.issue_api_key("ops", "admin").key
    response = api.post("/api/customers", {}, Authorization=f"Token {admin}")
    assert response.status_code == 201
    order = {"customer_id": response.json()["id"], "amount": "1.00"}
    assert api.post("/api/orders", order, Authorization=f"Token {admin}").status_code == 201


@pytest.mark.parametrize(
    ("path", "body"),
    [("/api/customers", {"id": 2}), ("/api/orders", {"customer_id": 1, "amount": "1.00"})],
)
def test_a_staff_key_is_forbidden_to_write(api: WriteApi, path: str, body: Any) -> None:
    api.register(id=1)
    staff = api.service.issue_api_key("support-desk", "staff").key
    before = api.head()
    response = api.post(path, body, Authorization=f"Token {staff}")
    assert response.status_code == 403
    assert response.json() == {"detail": "You do not have permission to perform this action."}
    assert api.head() == before


def test_credentials_are_checked_before_the_body(api: WriteApi) -> None:
    response = api.client.post("/api/orders", json={"amount": "nonsense"})
    assert response.status_code == 401


def test_an_order_body_sent_without_a_json_content_type_is_still_read_exactly(
    api: WriteApi,
) -> None:
    customer_id = api.register()
    response = api.client.post(
        "/api/orders",
        content=f'{{"customer_id": {customer_id}, "amount": 0.1}}'.encode(),
        headers=api.auth(**{"Content-Type": "application/json; charset=utf-8"}),
    )
    assert response.status_code == 201
    assert str(api.service.get_order(response.json()["order_id"]).amount) == "0.10"


def test_an_unexpected_failure_is_a_json_500_without_internals(
    api: WriteApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    customer_id = api.register()

    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("secret internals")

    # Both the framework's route and the order desk's batches fail unexpectedly.
    monkeypatch.setattr(api.service, "place_order", broken)
    monkeypatch.setattr(api.service, "place_orders", broken)
    response = api.post("/api/orders", {"customer_id": customer_id, "amount": "1.00"})
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal server error."}
    assert "secret" not in response.text


def test_the_openapi_document_lists_every_write_status(api: WriteApi) -> None:
    paths = api.client.get("/openapi.json").json()["paths"]
    statuses = set(paths["/api/orders"]["post"]["responses"])
    assert {"201", "401", "403", "404", "409", "422", "503"} <= statuses


def test_birth_date_today_is_accepted(api: WriteApi) -> None:
    today = datetime.now(UTC).date()
    customer_id = api.register(birth_date=today.isoformat())
    stored = api.service.get_customer(customer_id).profile["birth_date"]
    assert stored is not None
    assert date.fromisoformat(stored) == today


def test_the_documented_route_answers_orders_exactly_as_the_fast_path(api: WriteApi) -> None:
    app = api.client.app
    assert isinstance(app, ServiceApp)
    staff_key = api.service.issue_api_key("staff-tool", "staff").key
    desk_batches: list[int] = []
    place_orders = api.service.place_orders

    def counted(requests: Any) -> Any:
        desk_batches.append(len(requests))
        return place_orders(requests)

    api.service.place_orders = counted  # type: ignore[method-assign]

    def answers(run: str) -> list[tuple[int, Any, str | None]]:
        active = api.register()
        inactive = api.register()
        assert api.post(f"/api/customers/{inactive}/deactivate").status_code == 200
        requests: list[tuple[dict[str, Any], dict[str, str]]] = [
            ({"customer_id": active, "amount": "12.30", "order_id": f"{run}-1"}, {}),
            ({"customer_id": active, "amount": 0.1}, {}),
            ({"customer_id": active, "amount": "1.00", "order_id": f"{run}-1"}, {}),
            ({"customer_id": inactive, "amount": "1.00"}, {}),
            ({"customer_id": 10**9, "amount": "1.00"}, {}),
            ({"customer_id": active, "amount": "1.001"}, {}),
            ({"customer_id": active, "amount": "1.00", "extra": 1}, {}),
            ({"customer_id": active, "amount": "1.00"}, {"Authorization": f"Token {staff_key}"}),
            ({"customer_id": active, "amount": "1.00"}, {"Authorization": "Token nope"}),
            ({"customer_id": active, "amount": "1.00"}, {"Authorization": "Bearer x"}),
            ({"customer_id": active, "amount": "1.00"}, {"Idempotency-Key": f"{run}-key"}),
        ]
        seen = []
        for body, headers in requests:
            response = api.client.post("/api/orders", json=body, headers={**api.auth(), **headers})
            content = response.json()
            if response.status_code == 201:
                # Ids and positions differ between the runs; their presence and types do not.
                assert isinstance(content.pop("position"), int)
                content["order_id"] = content["order_id"].startswith(run) or "generated"
            elif isinstance(content.get("detail"), str):
                content["detail"] = content["detail"].replace(run, "<run>")
            seen.append((response.status_code, content, response.headers.get("www-authenticate")))
        return seen

    fast = answers("fast")
    served_by_desk = sum(desk_batches)
    framework = framework_alone(app, lambda: answers("route"))
    assert framework == fast
    statuses = [status for status, _, _ in fast]
    assert statuses == [201, 201, 409, 409, 404, 422, 422, 403, 401, 401, 201]
    # The fast path itself answered the placed and refused orders; the route, the rest.
    assert served_by_desk == 5
    assert sum(desk_batches) == served_by_desk


def test_hostile_refunds_get_the_same_answer_from_the_fast_path_and_the_route(
    api: WriteApi,
) -> None:
    app = api.client.app
    assert isinstance(app, ServiceApp)
    customer = api.register()
    valid = ("Authorization", f"Token {api.producer_key}")
    json_type = ("Content-Type", "application/json")

    def paths(order_id: str) -> list[str]:
        return [
            f"/api/orders/{order_id}/refunds",
            "/api/orders/no-such-order/refunds",
            f"/api/orders/{'o' * 100}/refunds",
            f"/api/orders/{'o' * 101}/refunds",
        ]

    bodies = [
        '{"amount":1e999999999}',
        '{"amount":-Infinity}',
        '{"amount":"\\ud800"}',
        "[" * 5000 + "]" * 5000,
        "{not json",
        '{"amount":"-Infinity"}',
        '{"amount":"NaN"}',
        '{"amount":12}',
        '{"amount":"1.00","extra":1}',
        "{}",
        "[]",
        "null",
        '{"amount":"1.00"}',
    ]
    header_variants: list[list[tuple[str, str] | tuple[bytes, bytes]]] = [
        [valid, json_type],
        [valid, valid, json_type],
        [(b"Authorization", b"Token\xa0" + api.producer_key.encode()), json_type],
        [json_type],
    ]

    def answers() -> list[tuple[int, Any, str | None]]:
        # A fresh order of 10.00 for each run: refunds granted change what comes after.
        order_id = api.place_order(customer, "10.00")
        seen = []
        # An Idempotency-Key of this run's own: the route alone answers those.
        variants = [*header_variants, [valid, json_type, ("Idempotency-Key", order_id)]]
        for path in paths(order_id):
            for body in bodies:
                for headers in variants:
                    response = api.client.post(path, content=body.encode(), headers=headers)
                    assert response.headers["content-type"] == "application/json"
                    body_seen = response.json()
                    if path.startswith(f"/api/orders/{order_id}/") and response.status_code == 200:
                        body_seen = "granted"  # a new position each time
                    seen.append(
                        (response.status_code, body_seen, response.headers.get("www-authenticate"))
                    )
        return seen

    fast = answers()
    framework = framework_alone(app, answers)
    assert framework == fast
    assert {status for status, _, _ in fast} >= {200, 400, 401, 404, 409, 422}


def test_hostile_and_odd_orders_get_the_same_answer_from_the_fast_path_and_the_route(
    api: WriteApi,
) -> None:
    app = api.client.app
    assert isinstance(app, ServiceApp)
    customer = api.register()
    valid = ("Authorization", f"Token {api.producer_key}")
    json_type = ("Content-Type", "application/json")
    bodies = [
        f'{{"customer_id":{customer},"amount":1e999999999}}',
        f'{{"customer_id":{customer},"amount":NaN}}',
        f'{{"customer_id":{customer},"amount":"1.00","order_id":"\\ud800"}}',
        "[" * 5000 + "]" * 5000,
        "{not json",
        f'{{"customer_id":{"9" * 50},"amount":"1.00"}}',
        f'{{"customer_id":{customer},"amount":"1.00","order_id":"x","placed_at":"bad"}}',
        f'{{"customer_id":{customer},"amount":"NaN"}}',
        f'{{"customer_id":{customer},"amount":"1e300000"}}',
        f'{{"customer_id":{customer},"amount":"-Infinity","extra":1}}',
        f'{{"customer_id":"{customer}","amount":12}}',
        '{"amount":"1.00"}',
        "[]",
        "null",
    ]
    header_variants: list[list[tuple[str, str] | tuple[bytes, bytes]]] = [
        [valid, json_type],
        [valid, valid, json_type],
        [("Authorization", "Token nope"), valid, json_type],
        [(b"Authorization", b"Token\xa0" + api.producer_key.encode()), json_type],
        [json_type],
    ]

    def answers() -> list[tuple[int, Any, str | None]]:
        seen = []
        for body in bodies:
            for headers in header_variants:
                response = api.client.post("/api/orders", content=body.encode(), headers=headers)
                assert response.headers["content-type"] == "application/json"
                seen.append(
                    (
                        response.status_code,
                        response.json(),
                        response.headers.get("www-authenticate"),
                    )
                )
        return seen

    fast = answers()
    framework = framework_alone(app, answers)
    assert framework == fast
    assert {status for status, _, _ in fast} == {400, 401, 422}
    assert api.placed_orders() == 0
