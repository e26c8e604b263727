"""The integrations Interlink knows, by name."""

from __future__ import annotations

import importlib
from functools import cache

from interlink.connectors.base import Integration

# Each module exposes ``INTEGRATION``; modules are imported on first use.
_MODULES: dict[str, str] = {
    "tryton": "interlink.connectors.tryton",
}


@cache
def integrations() -> dict[str, Integration]:
    found: dict[str, Integration] = {}
    for name, module_name in _MODULES.items():
        integration = importlib.import_module(module_name).INTEGRATION
        assert isinstance(integration, Integration)
        assert integration.name == name
        found[name] = integration
    return found


def get_integration(name: str) -> Integration | None:
    return integrations().get(name)
