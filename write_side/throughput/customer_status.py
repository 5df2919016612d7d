"""Whether customers may order, read fresh for every request, many customers per query.

Placing an order only needs to know that its customer exists and is active, as read
after the request arrived. Rather than a query per order to fast-forward the customer
aggregate, concurrent orders share one query (see batching) that returns only
the topics of the events each customer's stream gained since this process last looked;
the topics alone tell the status (write_side.domain.customer.ACTIVE_AFTER).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from uuid import UUID

from write_side.domain.customer import ACTIVE_AFTER
from write_side.domain.ids import customer_stream_id
from write_side.throughput.batching import Batching, Call

TopicsAfter = Callable[[Sequence[tuple[UUID, int]]], list[tuple[UUID, int, str]]]

MAX_CUSTOMERS_PER_QUERY = 500
MAX_REMEMBERED = 200_000


class CustomerStatuses(Batching[int, bool | None]):
    """customer id -> True (active), False (deactivated) or None (not registered)."""

    def __init__(self, topics_after: TopicsAfter) -> None:
        super().__init__(max_batch=MAX_CUSTOMERS_PER_QUERY)
        self._topics_after = topics_after
        # customer id -> (stream, last version seen, active); only the batch leader writes.
        self._known: dict[int, tuple[UUID, int, bool]] = {}

    def is_active(self, customer_id: int) -> bool | None:
        return self.submit(customer_id)

    def are_active(self, customer_ids: Sequence[int]) -> list[bool | Exception | None]:
        """Each customer's status, or the error reading it, from shared queries."""
        return self.submit_many(customer_ids)

    def process(self, batch: list[Call[int, bool | None]]) -> None:
        try:
            self._catch_up({call.item for call in batch})
        except Exception as error:
            for call in batch:
                call.fail(error)
            return
        for call in batch:
            known = self._known.get(call.item)
            call.succeed(None if known is None else known[2])

    def _catch_up(self, customer_ids: set[int]) -> None:
        streams: dict[UUID, int] = {}
        after: list[tuple[UUID, int]] = []
        for customer_id in customer_ids:
            stream, version, _ = self._known.get(
                customer_id, (customer_stream_id(customer_id), 0, False)
            )
            streams[stream] = customer_id
            after.append((stream, version))
        for stream, version, topic in self._topics_after(after):
            customer_id = streams[stream]
            _, _, active = self._known.get(customer_id, (stream, 0, False))
            self._known[customer_id] = (stream, version, ACTIVE_AFTER.get(topic, active))
        while len(self._known) > MAX_REMEMBERED:  # forget the oldest; re-read if asked again
            del self._known[next(iter(self._known))]
