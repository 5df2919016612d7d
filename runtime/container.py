"""The composition root: settings in, wired stores and services out."""

from __future__ import annotations

from dataclasses import dataclass, field

from runtime.settings import Settings, event_store_env
from write_side.application import CustomerService
from write_side.auth import KeyDirectory


@dataclass
class Container:
    """Everything one process needs, built once from Settings and closed once."""

    settings: Settings
    write_service: CustomerService = field(init=False)
    write_keys: KeyDirectory = field(init=False)

    def __post_init__(self) -> None:
        self.write_service = CustomerService(event_store_env(self.settings.EVENT_STORE_URL))
        self.write_keys = KeyDirectory(self.write_service)

    def close(self) -> None:
        self.write_service.close()
