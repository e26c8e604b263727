"""An in-memory integration whose ``check()`` a test controls: succeed, fail with an error, or hang."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from interlink.connectors.base import (
    AuthScheme,
    ConnectorContext,
    CredentialField,
    EntityCapabilities,
    EntityReader,
    EntityWriter,
    Integration,
    Page,
    ReadWindow,
)
from interlink.connectors.errors import ConnectorError

NAME = "checked"


@dataclass
class CheckSource:
    """The source's behaviour and what it saw."""

    failure: ConnectorError | None = None
    hang: bool = False
    # Credentials the connector renews during a check, as an OAuth refresh does.
    renewed: dict[str, str] | None = None
    checked: list[str] = field(default_factory=list)  # connection ids, one per check


class _EmptyReader:
    async def read(self, cursor: str | None, window: ReadWindow) -> AsyncIterator[Page]:
        yield Page(records=[], cursor="empty", complete=window.mode == "full")


class _Connector:
    def __init__(self, source: CheckSource, context: ConnectorContext) -> None:
        self.source = source
        self.context = context

    async def check(self) -> None:
        self.source.checked.append(self.context.connection_id)
        if self.source.hang:
            await asyncio.Event().wait()
        if self.source.renewed is not None:
            await self.context.save_credentials(self.source.renewed)
        if self.source.failure is not None:
            raise self.source.failure

    def reader(self, entity: str) -> EntityReader:
        return _EmptyReader()

    def writer(self, entity: str) -> EntityWriter | None:
        return None


def check_integration(source: CheckSource) -> Integration:
    def build(context: ConnectorContext) -> _Connector:
        return _Connector(source, context)

    return Integration(
        name=NAME,
        label="Checked",
        description="An in-memory source whose health check a test controls.",
        auth_schemes=(
            AuthScheme("password", "Password", (CredentialField("password", "Password", "", secret=True),)),
        ),
        entities=(EntityCapabilities("vendor"),),
        build=build,
    )
