"""`customers demo`: append realistic sample customers and orders (runtime/demo_store.py)."""

from __future__ import annotations

from typing import Annotated

import typer

DEFAULT_SEED = 20240601


def demo(
    customers: Annotated[int, typer.Option(min=1, help="How many customers to add")] = 100,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same data")] = (
        DEFAULT_SEED
    ),
    if_empty: Annotated[
        bool, typer.Option("--if-empty", help="Add nothing when the store has customers")
    ] = False,
) -> None:
    """Append realistic sample customers and orders (for trying it out and for benchmarks)."""
    import time

    from rich.console import Console

    from runtime.cli_common import open_container
    from runtime.demo_store import append_sample, has_customers, summary

    container = open_container()
    service = container.write_service
    out = Console(soft_wrap=True)
    try:
        if if_empty and has_customers(service):
            out.print("The event store has customers already; no sample data added.")
            return
        started = time.perf_counter()
        tally = append_sample(service, customers, seed, progress_console=Console(stderr=True))
        elapsed = time.perf_counter() - started
    finally:
        container.close()
    out.print(summary(tally, elapsed), highlight=False)
