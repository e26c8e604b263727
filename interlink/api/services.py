"""What the API's handlers use: the store, the credential box, the sync dispatcher, a clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from fastapi import Request

from interlink.crypto import CredentialBox
from interlink.settings import Settings
from interlink.store import Database
from interlink.sync.dispatch import Dispatcher
from interlink.sync.engine import HttpFactory


@dataclass
class Services:
    settings: Settings
    db: Database
    credentials: CredentialBox
    dispatcher: Dispatcher | None
    clock: Callable[[], datetime]
    http_factory: HttpFactory


def get_services(request: Request) -> Services:
    services = request.app.state.services
    assert isinstance(services, Services)
    return services
