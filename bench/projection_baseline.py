"""The projection benchmark's baseline: what a user of the library's ProjectionRunner writes.

The same Redis customer record as our projector's, written one event at a time: read the
record, then one MULTI/EXEC per event with the record, the totals and the tracking
position. bench/projection.py runs it through ProjectionRunner with RedisViewFactory as
its persistence module.
"""

from __future__ import annotations

import os
from typing import Any

import redis
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import InfrastructureFactory, Tracking, TrackingRecorder
from eventsourcing.projection import Projection

from contract.customer_document import PROFILE_FIELDS
from projections.customer_record import (
    R_ACTIVE,
    R_DATE_JOINED,
    R_LAST_LOGIN,
    R_POSITION,
    R_PROFILE,
    chunked,
    decode_text,
    fields_of,
    iso_time,
    offset_of,
    orders_field,
    record_of,
    record_values,
    spent_field,
)
from projections.customer_view import CustomerRecord, apply
from projections.event_decoding import (
    CANCELLED,
    DEACTIVATED,
    LOGGED_IN,
    PLACED,
    PROFILE_INDEX,
    PROFILE_UPDATED,
    REACTIVATED,
    REFUNDED,
    REGISTERED,
    CustomerChange,
    spent_by_cancel,
    spent_by_refund,
)
from projections.read_model import Keys
from projections.stored_fields import canonical_time
from projections.tracking import RedisTrackingRecorder
from write_side.domain.customer import Customer
from write_side.domain.money import to_minor_units
from write_side.domain.order import Order


class BaselineView(RedisTrackingRecorder):
    """The same Redis record, written one event at a time in a MULTI/EXEC with tracking."""

    def __init__(self) -> None:
        client = redis.Redis.from_url(os.environ["BENCH_VIEW_REDIS_URL"])
        super().__init__(client, Keys(os.environ["BENCH_VIEW_PREFIX"]), generation=1)

    def apply_change(self, change: CustomerChange | None, tracking: Tracking) -> None:
        pipe = self.client.pipeline(transaction=True)
        if change is not None:
            cid = change.customer_id
            key = self.keys.bucket(1, cid)
            chunks = fields_of(cid)[:4]
            current = _record(cid, record_of(self.client.hmget(key, list(chunks))))
            updated = apply(current, change)
            if updated is not current:
                written = chunked(offset_of(cid), updated.fields()[0])
                pipe.hdel(key, *chunks)
                pipe.hset(key, mapping=written)  # type: ignore[arg-type]
                pipe.hincrby(key, spent_field(cid), change.spent)
                pipe.hincrby(key, orders_field(cid), change.orders)
        pipe.hset(self.key, tracking.application_name, str(tracking.notification_id))
        pipe.execute()


def _record(customer_id: int, record: bytes | None) -> CustomerRecord:
    if record is None:
        return CustomerRecord(customer_id)
    values = record_values(record)
    return CustomerRecord(
        customer_id,
        position=int(values[R_POSITION]),
        active=values[R_ACTIVE] == "1",
        date_joined=iso_time(values[R_DATE_JOINED]),
        last_login=iso_time(values[R_LAST_LOGIN]),
        profile=tuple(decode_text(value) for value in values[R_PROFILE:]),
    )


class BaselineProjection(Projection[BaselineView]):
    name = "baseline"

    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        self.view.apply_change(change_of(domain_event, tracking.notification_id), tracking)


def change_of(event: DomainEventProtocol[Any], position: int) -> CustomerChange | None:
    """The customer change a domain event object makes (the baseline gets objects)."""
    if isinstance(event, Customer.Registered):
        profile = tuple(event.profile.get(name) for name in PROFILE_FIELDS)
        joined = canonical_time(event.timestamp)
        return CustomerChange(position, event.customer_id, REGISTERED, value=(joined, profile))
    if isinstance(event, Customer.ProfileUpdated):
        updates = tuple((PROFILE_INDEX[k], v) for k, v in event.changes.items())
        return CustomerChange(position, event.customer_id, PROFILE_UPDATED, value=updates)
    if isinstance(event, Customer.LoggedIn):
        at = canonical_time(event.at)
        return CustomerChange(position, event.customer_id, LOGGED_IN, value=at)
    if isinstance(event, Customer.Deactivated):
        return CustomerChange(position, event.customer_id, DEACTIVATED)
    if isinstance(event, Customer.Reactivated):
        return CustomerChange(position, event.customer_id, REACTIVATED)
    if isinstance(event, Order.Placed):
        return CustomerChange(position, event.customer_id, PLACED, to_minor_units(event.amount), 1)
    if isinstance(event, Order.Cancelled):
        spent = spent_by_cancel(to_minor_units(event.amount), to_minor_units(event.refunded))
        return CustomerChange(position, event.customer_id, CANCELLED, spent, -1)
    if isinstance(event, Order.Refunded):
        spent = spent_by_refund(to_minor_units(event.amount))
        return CustomerChange(position, event.customer_id, REFUNDED, spent, 0)
    return None


class RedisViewFactory(InfrastructureFactory[TrackingRecorder]):
    """A persistence module for the view alone, so ProjectionRunner can build a Redis view."""

    def aggregate_recorder(self, purpose: str = "events") -> Any:
        raise NotImplementedError

    def application_recorder(self) -> Any:
        raise NotImplementedError

    def tracking_recorder(self, tracking_recorder_class: Any = None) -> TrackingRecorder:
        view_class = tracking_recorder_class or BaselineView
        view: TrackingRecorder = view_class()
        return view

    def process_recorder(self) -> Any:
        raise NotImplementedError
