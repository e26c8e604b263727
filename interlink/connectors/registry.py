"""The integrations Interlink knows: each package under ``interlink.connectors`` with an ``INTEGRATION``."""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

import interlink.connectors
from interlink.connectors.base import Integration


@cache
def integrations() -> dict[str, Integration]:
    found: dict[str, Integration] = {}
    for module_info in pkgutil.iter_modules(interlink.connectors.__path__):
        if not module_info.ispkg:
            continue
        module = importlib.import_module(f"interlink.connectors.{module_info.name}")
        integration = getattr(module, "INTEGRATION", None)
        if isinstance(integration, Integration):
            found[integration.name] = integration
    return dict(sorted(found.items()))


def get_integration(name: str) -> Integration | None:
    return integrations().get(name)
