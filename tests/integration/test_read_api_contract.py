"""The read endpoint against the contract's table, over real HTTP, real Redis, records by hand."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from contract.customer_document import RESPONSE_FIELDS
from edge.token_header import (
    HAS_SPACES,
    INVALID_TOKEN,
    NO_CREDENTIALS,
    NOT_PROVIDED,
    PERMISSION_DENIED,
)
from projections.customer_record import offset_of, orders_field
from projections.read_model import Keys, partition_of, slice_field, slice_of
from runtime.container import Container
from runtime.http import build_app
from runtime.settings import Settings
from tests.support import local_http
from tests.support.live_app import serving
from tests.support.read_model_records import put_api_key, put_customer, set_applied_position
from tests.support.waiting import wait_until

STAFF, ADMIN, PRODUCER, REVOKED = "staff-key", "admin-key", "producer-key", "revoked-key"


@pytest.fixture
def store(redis_url: str, redis_prefix: str) -> Iterator[tuple[redis.Redis, Keys]]:
    client = redis.Redis.from_url(redis_url)
    keys = Keys(redis_prefix)
    put_api_key(client, keys, STAFF, "staff")
    put_api_key(client, keys, ADMIN, "admin")
    put_api_key(client, keys, PRODUCER, "producer")
    put_api_key(client, keys, REVOKED, "staff", revoked=True)
    set_applied_position(client, keys, 10)
    put_customer(
        client, keys, 7, position=9, first_name="Ada", last_name="Lovelace",
        email="ada@example.com", mobile_number="+44 20 7946 0000", national_code="X1",
        birth_date="1815-12-10", gender="female", notes="first programmer",
        last_login="2024-05-06T07:08:09.000010+00:00", spent_cents=123450, orders=3,
    )  # fmt: skip
    put_customer(client, keys, 8, position=10, active=False)
    yield client, keys
    client.close()


@pytest.fixture
def base_url(
    store: tuple[redis.Redis, Keys], redis_url: str, redis_prefix: str, tmp_path: Path
) -> Iterator[str]:
    settings = Settings(
        EVENT_STORE_URL=f"sqlite:///{tmp_path / 'events.sqlite'}",
        REDIS_PREFIX=redis_prefix,
        MIN_POSITION_WAIT_SECONDS=0.5,
    )
    container = Container(settings)
    try:
        with serving(build_app(container, write=False, read=True, redis_url=redis_url)) as url:
            yield url
    finally:
        container.close()


def get(base_url: str, path: str, key: str | None = STAFF, **headers: str) -> httpx.Response:
    if key is not None:
        headers["Authorization"] = f"Token {key}"
    return local_http.get(base_url + path, headers=headers, timeout=5)


def assert_error(response: httpx.Response, status: int, detail: str) -> None:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"detail": detail}


def test_a_found_customer_is_the_contract_document_in_order(base_url: str) -> None:
    response = get(base_url, "/api/customers/7")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert tuple(body) == RESPONSE_FIELDS
    assert body == {
        "id": 7,
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": "ada@example.com",
        "mobile_number": "+44 20 7946 0000",
        "national_code": "X1",
        "notes": "first programmer",
        "birth_date": "1815-12-10",
        "gender": "female",
        "is_active": True,
        "is_profile_completed": True,
        "date_joined": "2024-01-02T03:04:05.000006+00:00",
        "last_login": "2024-05-06T07:08:09.000010+00:00",
        "total_orders": 3,
        "total_spent": "1234.50",
    }
    assert response.headers["x-projection-position"] == "10"
    assert re.fullmatch(r'"[0-9a-f]+"', response.headers["etag"])


def test_a_bare_customer_has_nulls_zero_totals_and_is_inactive(base_url: str) -> None:
    body = get(base_url, "/api/customers/8", key=ADMIN).json()
    assert body["first_name"] is None
    assert body["last_login"] is None
    assert body["is_active"] is False
    assert body["is_profile_completed"] is False
    assert (body["total_orders"], body["total_spent"]) == (0, "0.00")


@pytest.mark.parametrize(
    ("authorization", "detail"),
    [
        (None, NOT_PROVIDED),
        ("Bearer staff-key", NOT_PROVIDED),
        ("Basic c3RhZmY6a2V5", NOT_PROVIDED),
        ("Token", NO_CREDENTIALS),
        ("token", NO_CREDENTIALS),
        ("Token staff key", HAS_SPACES),
        ("Token staff-key extra", HAS_SPACES),
        ("Token no-such-key", INVALID_TOKEN),
        (f"Token {REVOKED}", INVALID_TOKEN),
    ],
)
def test_bad_credentials_get_401_with_drf_detail_and_token_challenge(
    base_url: str, authorization: str | None, detail: str
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = get(base_url, "/api/customers/7", key=None, **headers)
    assert_error(response, 401, detail)
    assert response.headers["www-authenticate"] == "Token"


@pytest.mark.parametrize("scheme", ["token", "TOKEN", "ToKeN"])
def test_the_scheme_word_is_case_insensitive(base_url: str, scheme: str) -> None:
    response = get(base_url, "/api/customers/7", key=None, Authorization=f"{scheme} {STAFF}")
    assert response.status_code == 200


def test_a_producer_key_is_forbidden(base_url: str) -> None:
    response = get(base_url, "/api/customers/7", key=PRODUCER)
    assert_error(response, 403, PERMISSION_DENIED)
    assert "www-authenticate" not in response.headers


def test_an_unknown_customer_is_404(base_url: str) -> None:
    assert_error(get(base_url, "/api/customers/999"), 404, "Customer not found.")


def test_authentication_comes_before_lookup(base_url: str) -> None:
    # Without valid credentials, an existing and a missing id answer the same.
    existing = get(base_url, "/api/customers/7", key="wrong")
    missing = get(base_url, "/api/customers/999", key="wrong")
    assert (existing.status_code, existing.json()) == (missing.status_code, missing.json())
    assert existing.status_code == 401


@pytest.mark.parametrize(
    "segment",
    ["0", "00", "-1", "+7", "%207", "7%20", "7.0", "1e3", "abc", "9223372036854775808",
     "99999999999999999999999", "%EF%BC%97", "\u0667"],
)  # fmt: skip
def test_malformed_ids_are_not_found_like_an_id_nobody_has(base_url: str, segment: str) -> None:
    # The contract allows 404 or 422; the decision (docs/decisions.md) is 404, never 500.
    assert_error(get(base_url, f"/api/customers/{segment}"), 404, "Customer not found.")


@pytest.mark.parametrize("segment", ["07", "007", "0" * 40 + "7"])
def test_leading_zeros_name_the_same_customer_as_in_django_routing(
    base_url: str, segment: str
) -> None:
    # Django's <int:pk> converter reads `07` as 7; both sides follow it (edge/ids.py).
    response = get(base_url, f"/api/customers/{segment}")
    assert response.status_code == 200
    assert response.json()["id"] == 7


def test_the_largest_64_bit_id_is_a_valid_id(base_url: str) -> None:
    assert_error(get(base_url, f"/api/customers/{2**63 - 1}"), 404, "Customer not found.")


def test_if_none_match_with_the_current_etag_is_304(base_url: str) -> None:
    first = get(base_url, "/api/customers/7")
    etag = first.headers["etag"]
    again = get(base_url, "/api/customers/7", **{"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    weak = get(base_url, "/api/customers/7", **{"If-None-Match": f'"other", W/{etag}'})
    assert weak.status_code == 304


def test_a_changed_record_gets_a_new_etag_and_a_full_body(
    base_url: str, store: tuple[redis.Redis, Keys]
) -> None:
    client, keys = store
    etag = get(base_url, "/api/customers/7").headers["etag"]
    client.hincrby(keys.bucket(1, 7), orders_field(7), 1)
    response = get(base_url, "/api/customers/7", **{"If-None-Match": etag})
    assert response.status_code == 200
    assert response.json()["total_orders"] == 4
    assert response.headers["etag"] != etag


def test_x_min_position_already_applied_answers_at_once(base_url: str) -> None:
    response = get(base_url, "/api/customers/7", **{"X-Min-Position": "10"})
    assert response.status_code == 200
    assert int(response.headers["x-projection-position"]) >= 10


def test_x_min_position_not_reached_in_time_is_503_with_retry_after(base_url: str) -> None:
    response = get(base_url, "/api/customers/7", **{"X-Min-Position": "11"})
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json()["detail"]


def test_x_min_position_waits_for_the_projection_to_catch_up(
    base_url: str, store: tuple[redis.Redis, Keys]
) -> None:
    client, keys = store
    # The projector applies position 12 while the read is waiting for it.
    projector_applies = threading.Timer(0.1, set_applied_position, (client, keys, 12))
    projector_applies.start()
    try:
        response = get(base_url, "/api/customers/7", **{"X-Min-Position": "12"})
    finally:
        projector_applies.join()
    assert response.status_code == 200
    assert response.headers["x-projection-position"] == "12"


def test_a_missed_announcement_is_found_by_polling(
    base_url: str, store: tuple[redis.Redis, Keys]
) -> None:
    client, keys = store
    set_applied_position(client, keys, 13, announce=False)
    response = get(base_url, "/api/customers/7", **{"X-Min-Position": "13"})
    assert response.status_code == 200


def test_x_min_position_waits_only_on_the_customers_own_partition(
    base_url: str, store: tuple[redis.Redis, Keys]
) -> None:
    client, keys = store
    other = 4000  # in another partition (and slice) than customer 7
    assert partition_of(other) != partition_of(7)
    assert slice_of(partition_of(other)) != slice_of(partition_of(7))
    put_customer(client, keys, other, position=10)
    # The read model as a whole is at 10; customer 7's partition has applied up to 15,
    # customer 4000's slice (its workers' recorded position) up to 16.
    client.set(keys.checkpoint(1, partition_of(7)), 15)
    client.hset(keys.tracking(1), slice_field(slice_of(partition_of(other))), 16)

    ahead = get(base_url, "/api/customers/7", **{"X-Min-Position": "15"})
    assert ahead.status_code == 200
    assert ahead.headers["x-projection-position"] == "15"
    by_slice = get(base_url, f"/api/customers/{other}", **{"X-Min-Position": "16"})
    assert by_slice.status_code == 200
    assert by_slice.headers["x-projection-position"] == "16"
    # Neither has reached 17 (nor 7 reached 16): the wait is still bounded, then 503.
    behind = get(base_url, f"/api/customers/{other}", **{"X-Min-Position": "17"})
    assert behind.status_code == 503
    assert get(base_url, "/api/customers/7", **{"X-Min-Position": "16"}).status_code == 503


@pytest.mark.parametrize("value", ["-1", "ten", "1.5", "99999999999999999999"])
def test_a_malformed_x_min_position_is_422(base_url: str, value: str) -> None:
    response = get(base_url, "/api/customers/7", **{"X-Min-Position": value})
    assert_error(response, 422, "X-Min-Position must be a non-negative integer.")


def test_revocation_takes_effect_within_a_second(
    base_url: str, store: tuple[redis.Redis, Keys]
) -> None:
    client, keys = store
    put_api_key(client, keys, "soon-revoked", "staff")
    # The new key is picked up by the refresh, then revoked by the projector.
    assert wait_until(lambda: get(base_url, "/api/customers/7", "soon-revoked").status_code == 200)
    put_api_key(client, keys, "soon-revoked", "staff", revoked=True, position=2)
    assert wait_until(
        lambda: get(base_url, "/api/customers/7", "soon-revoked").status_code == 401,
        deadline=1.0,
    )


def test_a_corrupt_record_is_a_logged_500_without_internals(
    base_url: str, store: tuple[redis.Redis, Keys], caplog: pytest.LogCaptureFixture
) -> None:
    client, keys = store
    client.hset(keys.bucket(1, 9), offset_of(9) + "a", "not a record")
    with caplog.at_level(logging.ERROR, logger="customers.read"):
        response = get(base_url, "/api/customers/9")
    assert_error(response, 500, "Internal server error.")
    request_id = response.headers["x-request-id"]
    assert any(request_id in record.getMessage() for record in caplog.records)
    assert "Traceback" not in response.text


def test_keys_never_appear_in_logs(base_url: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        for key in (STAFF, REVOKED, "never-issued-key", PRODUCER):
            get(base_url, "/api/customers/7", key=key)
            get(base_url, "/api/customers/nope", key=key)
    logged = caplog.text
    for key in (STAFF, REVOKED, "never-issued-key", PRODUCER):
        assert key not in logged


def test_a_key_projected_before_the_read_is_accepted_at_the_awaited_position(
    base_url: str, store: tuple[redis.Redis, Keys]
) -> None:
    client, keys = store
    # The projector has applied a new key and the write it reads for, but the reader's
    # cached keys predate both: the one refresh an unknown key gets finds it.
    put_api_key(client, keys, "brand-new-key", "staff", position=14)
    set_applied_position(client, keys, 14, announce=False)
    response = get(base_url, "/api/customers/7", "brand-new-key", **{"X-Min-Position": "14"})
    assert response.status_code == 200


def test_an_unknown_key_never_waits_for_its_position(
    store: tuple[redis.Redis, Keys], redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    # Decided: credentials come first, so an unknown key is not given the wait budget
    # (here a minute, with a Redis read per poll): one refresh of the keys, then 401.
    settings = Settings(
        EVENT_STORE_URL=f"sqlite:///{tmp_path / 'events.sqlite'}",
        REDIS_PREFIX=redis_prefix,
        MIN_POSITION_WAIT_SECONDS=60,
    )
    container = Container(settings)
    try:
        with serving(build_app(container, write=False, read=True, redis_url=redis_url)) as url:
            response = local_http.get(
                f"{url}/api/customers/7",
                headers={"Authorization": "Token never-issued", "X-Min-Position": str(10**18)},
                timeout=20,
            )
    finally:
        container.close()
    assert_error(response, 401, INVALID_TOKEN)


def test_an_unknown_key_is_still_401_after_the_wait(base_url: str) -> None:
    response = get(base_url, "/api/customers/7", "never-issued", **{"X-Min-Position": "11"})
    assert_error(response, 401, INVALID_TOKEN)
