"""The one adapter to the eventsourcing library's internals: its tables, pool and wire format.

Everything else uses the library's public API; a library upgrade is checked against this
package by tests/integration/test_library_contract.py.
"""
