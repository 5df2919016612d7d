"""Realistic sample customers and their histories, reproducible from a seed.

Pure generation, no I/O: the same seed and customer ids give the same people, orders,
cancellations and refunds. Emails use the reserved example domains, so none is real.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from contract.customer_document import COMPLETION_FIELDS

FIRST_NAMES = {
    "male": (
        "Ali", "Reza", "Mohammad", "Hossein", "Amir", "Mehdi", "Dariush", "Kian", "James",
        "Lucas", "Mateo", "Noah", "Omar", "Yusuf", "Hiroshi", "Arjun", "Liam", "Ethan",
        "Davide", "Jonas", "Pavel", "Tomasz", "Samuel", "Elias",
    ),
    "female": (
        "Sara", "Maryam", "Fatemeh", "Zahra", "Niloofar", "Parisa", "Shirin", "Leila", "Emma",
        "Olivia", "Sofia", "Amara", "Aisha", "Yuki", "Priya", "Chloe", "Mia", "Hannah",
        "Giulia", "Lena", "Anna", "Zofia", "Ines", "Clara",
    ),
}  # fmt: skip
LAST_NAMES = (
    "Ahmadi", "Hosseini", "Karimi", "Moradi", "Rahimi", "Jafari", "Rostami", "Kazemi",
    "Tehrani", "Shirazi", "Smith", "Johnson", "Garcia", "Martinez", "Rossi", "Bianchi",
    "Muller", "Schmidt", "Kowalski", "Nowak", "Tanaka", "Sato", "Patel", "Sharma", "Okafor",
    "Mensah", "Haddad", "Khoury", "Dubois", "Laurent", "Silva", "Santos", "Novak", "Larsen",
)  # fmt: skip
EMAIL_DOMAINS = ("example.com", "example.org", "example.net")
MOBILE_PREFIXES = ("912", "913", "914", "919", "921", "935", "936", "937", "938", "939")
NOTES = (
    "Prefers delivery after 5 pm.",
    "VIP since the spring campaign.",
    "Asked for invoices by email only.",
    "Wholesale buyer; call before large shipments.",
    "Gift wrapping on every order.",
    "Moved to a new address last month.",
)

SHARE_INCOMPLETE_PROFILE = 0.15
SHARE_WITH_NOTES = 0.10
SHARE_DEACTIVATED = 0.03
SHARE_CANCELLED = 0.08
SHARE_REFUNDED = 0.06
MAX_LOGINS = 5
MAX_ORDERS = 6
MAX_ORDER_CENTS = 5_000_000


@dataclass(frozen=True)
class OrderPlan:
    order_id: str
    amount: Decimal
    refunds: tuple[Decimal, ...]
    cancelled: bool


@dataclass(frozen=True)
class CustomerPlan:
    customer_id: int
    profile: dict[str, str | None]
    logins: int
    orders: tuple[OrderPlan, ...]
    deactivated: bool


class SampleData:
    """A deterministic stream of customer plans; one instance per seed.

    `complete`: every profile field set, every customer logged in and ordered at least
    once, none deactivated (the customers the benchmarks read, order against and size);
    the other draws stay as they are. Without it, the stream `customers demo` writes.
    """

    def __init__(self, seed: int, today: date, *, complete: bool = False) -> None:
        self._rng = random.Random(seed)
        self._today = today
        self._least = 1 if complete else 0
        self._with_notes = 1.0 if complete else SHARE_WITH_NOTES
        self._incomplete = 0.0 if complete else SHARE_INCOMPLETE_PROFILE
        self._deactivated = 0.0 if complete else SHARE_DEACTIVATED

    def customer(self, customer_id: int) -> CustomerPlan:
        rng = self._rng
        profile = self._profile(customer_id)
        logins = rng.randint(self._least, MAX_LOGINS)
        orders = max(self._least, min(rng.randint(0, MAX_ORDERS), rng.randint(0, MAX_ORDERS)))
        return CustomerPlan(
            customer_id=customer_id,
            profile=profile,
            logins=logins,
            orders=tuple(self._order(f"demo-{customer_id}-{n}") for n in range(1, 1 + orders)),
            deactivated=rng.random() < self._deactivated,
        )

    def _profile(self, customer_id: int) -> dict[str, str | None]:
        rng = self._rng
        gender = rng.choice(("male", "female"))
        first = rng.choice(FIRST_NAMES[gender])
        last = rng.choice(LAST_NAMES)
        age_days = rng.randint(18 * 365, 75 * 365)
        profile: dict[str, str | None] = {
            "first_name": first,
            "last_name": last,
            "email": f"{first}.{last}.{customer_id}@{rng.choice(EMAIL_DOMAINS)}".lower(),
            "mobile_number": (
                f"+98 {rng.choice(MOBILE_PREFIXES)} {rng.randint(100, 999)} "
                f"{rng.randint(1000, 9999)}"
            ),
            "national_code": national_code(rng),
            "birth_date": (self._today - timedelta(days=age_days)).isoformat(),
            "gender": gender,
            "notes": rng.choice(NOTES) if rng.random() < self._with_notes else None,
        }
        if rng.random() < self._incomplete:
            for name in rng.sample(COMPLETION_FIELDS[2:], rng.randint(1, 3)):
                profile[name] = None
        return profile

    def _order(self, order_id: str) -> OrderPlan:
        rng = self._rng
        # Mostly small baskets, now and then a large one; always whole cents.
        cents = min(int(rng.lognormvariate(8.5, 1.0)) + 100, MAX_ORDER_CENTS)
        amount = Decimal(cents).scaleb(-2)
        refunds: tuple[Decimal, ...] = ()
        if rng.random() < SHARE_REFUNDED:
            refunded = rng.randint(1, cents)
            refunds = (Decimal(refunded).scaleb(-2),)
        return OrderPlan(order_id, amount, refunds, cancelled=rng.random() < SHARE_CANCELLED)


def national_code(rng: random.Random) -> str:
    """A 10-digit code whose last digit is the mod-11 check digit national codes carry."""
    digits = [rng.randint(0, 9) for _ in range(9)]
    remainder = sum(d * (10 - i) for i, d in enumerate(digits)) % 11
    check = remainder if remainder < 2 else 11 - remainder
    return "".join(map(str, digits)) + str(check)
