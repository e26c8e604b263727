"""Sandboxes: simulators of vendor APIs that cannot run here, for the demo and the tests.

Each sandbox is a Starlette app built from the vendor's public documentation,
with deterministic seeded data, endpoints to change records and rotate
credentials, and fault injection (see ``interlink.sandbox.faults``).
"""
