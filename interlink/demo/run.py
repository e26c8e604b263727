"""``interlink demo``: a throwaway Interlink linked to real and simulated systems, synced and served.

It starts a local Tryton with seeded data (when the ``tryton`` extra is
installed) and every sandbox that ships with Interlink, links one connection
to each, runs a first sync, prints a few unified purchase orders and the URLs
to try, and serves the API until interrupted. Everything lives in one
directory, so a second run reuses the data and syncs incrementally.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import pkgutil
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from rich.console import Console
from rich.table import Table

import interlink.sandbox
from interlink.api.routes.records import record_json
from interlink.connections import create_connection
from interlink.connectors.registry import integrations
from interlink.crypto import generate_secret_key, generate_token, hash_token
from interlink.model import ConnectionSettings
from interlink.runtime import Runtime
from interlink.settings import Settings
from interlink.store.api_keys import insert_api_key
from interlink.store.connections import list_connections, transition_status, update_connection
from interlink.store.records import RecordFilter, list_records
from interlink.sync.requests import request_syncs

logger = logging.getLogger(__name__)
# Output that is not a terminal keeps long lines, such as the curl command, in one piece.
console = Console(stderr=True, soft_wrap=True, width=None if sys.stderr.isatty() else 160)

# The demo's Tryton admin password: fixed, so the seeded template is built once.
TRYTON_ADMIN_PASSWORD = "interlink-demo"  # noqa: S105 - a local throwaway server
DEMO_END_USER = "demo-customer"


@dataclass(frozen=True)
class DemoSystem:
    integration: str
    credentials: dict[str, str]


def run_demo(*, host: str, port: int, directory: Path, purchases: int, tryton: bool = True) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_demo(host=host, port=port, directory=directory, purchases=purchases, tryton=tryton))
    console.print("demo stopped")


async def _demo(*, host: str, port: int, directory: Path, purchases: int, tryton: bool) -> None:
    settings = Settings(
        database_url=f"sqlite:///{directory / 'interlink.sqlite3'}",
        secret_key=_demo_secret_key(directory),
        base_url=f"http://{host}:{port}",
        webhook_allow_private=True,
        webhook_allow_http=True,
    )
    runtime = Runtime(settings)
    async with contextlib.AsyncExitStack() as stack:
        systems: list[DemoSystem] = []
        tryton_server = _start_tryton(directory, purchases) if tryton else None
        if tryton_server is not None:
            stack.callback(tryton_server.stop)
            systems.append(tryton_system(tryton_server))
        for name, serve in sandbox_modules():
            base_url = await stack.enter_async_context(_serve_sandbox(name, serve))
            systems.append(DemoSystem(name, serve.demo_credentials(base_url)))

        await runtime.start()
        stack.push_async_callback(runtime.stop)
        key = await _create_api_key(runtime)
        connection_ids = await _link(runtime, systems)
        await _first_sync(runtime, connection_ids)
        await _show_purchase_orders(runtime, connection_ids)
        _print_urls(settings.base_url, key)

        app = runtime.app(manage_lifecycle=False)
        server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_config=None, lifespan="off"))
        await server.serve()


def _demo_secret_key(directory: Path) -> str:
    """Return the demo's throwaway key, kept beside its database so a second run can decrypt the first's."""
    path = directory / "secret.key"
    if not path.exists():
        path.write_text(generate_secret_key())
        path.chmod(0o600)
    return path.read_text().strip()


def _start_tryton(directory: Path, purchases: int) -> Any:
    try:
        import trytond  # noqa: F401

        from interlink.demo.tryton_server import TrytonServer, prepare_template
    except ImportError:
        console.print("Tryton is not installed (pip install -e '.[tryton]'); the demo runs without it")
        return None
    console.print("preparing the demo Tryton database (about a minute the first time)...")
    template = prepare_template(
        directory / "tryton-template", purchases=purchases, admin_password=TRYTON_ADMIN_PASSWORD
    )
    server = TrytonServer(
        template, directory / "tryton", admin_password=TRYTON_ADMIN_PASSWORD, keep_existing=True
    )
    server.start()
    console.print(f"Tryton serves on {server.url}")
    return server


def tryton_system(server: Any) -> DemoSystem:
    return DemoSystem(
        "tryton",
        {
            "url": server.url,
            "database": server.database_names[0],
            "username": server.admin_login,
            "password": server.admin_password,
        },
    )


def sandbox_modules() -> list[tuple[str, Any]]:
    """Return the sandbox modules with ``create_app`` and ``demo_credentials``, which can serve a demo."""
    found = []
    for module_info in pkgutil.iter_modules(interlink.sandbox.__path__):
        if not module_info.ispkg or module_info.name not in integrations():
            continue
        module = importlib.import_module(f"interlink.sandbox.{module_info.name}")
        if hasattr(module, "create_app") and hasattr(module, "demo_credentials"):
            found.append((module_info.name, module))
    return found


@contextlib.asynccontextmanager
async def _serve_sandbox(name: str, module: Any) -> AsyncIterator[str]:
    port = _free_port()
    config = uvicorn.Config(
        module.create_app(), host="127.0.0.1", port=port, log_config=None, lifespan="off", access_log=False
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(), name=f"sandbox-{name}")
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.05)
    else:
        raise RuntimeError(f"the {name} sandbox did not start within 10 s")
    console.print(f"sandbox {name} serves on http://127.0.0.1:{port}")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _create_api_key(runtime: Runtime) -> str:
    key = generate_token("ilk")
    async with runtime.db.write() as db:
        await insert_api_key(db, name="demo", key_hash=hash_token(key), key_prefix=key[:8], expires_at=None)
    return key


async def _link(runtime: Runtime, systems: list[DemoSystem]) -> dict[str, str]:
    """Create one connection per system, or reuse the one an earlier demo run made."""
    async with runtime.db.read() as db:
        existing = {
            row.integration: row.id
            for row in await list_connections(db, after_id=None, limit=1000, end_user_id=DEMO_END_USER)
        }
    linked: dict[str, str] = {}
    for system in systems:
        if system.integration in existing:
            # The systems listen on new ports at every start, so the stored credentials are refreshed.
            connection_id = existing[system.integration]
            async with runtime.db.write() as db:
                await update_connection(
                    db, connection_id, credentials=runtime.credentials.encrypt(system.credentials)
                )
                await transition_status(db, connection_id, "active")
            linked[system.integration] = connection_id
            continue
        created = await create_connection(
            runtime.db,
            runtime.credentials,
            runtime.http_factory,
            integration_name=system.integration,
            end_user={"id": DEMO_END_USER, "name": "Demo customer"},
            credentials=system.credentials,
            auth_scheme=None,
            settings=ConnectionSettings(),
        )
        linked[system.integration] = created.connection.id
        console.print(f"linked {system.integration} as connection {created.connection.id}")
    return linked


async def _first_sync(runtime: Runtime, connection_ids: dict[str, str]) -> None:
    columns = (
        "integration",
        "entity",
        "status",
        "fetched",
        "created",
        "updated",
        "unchanged",
        "deleted",
        "error",
    )
    table = Table(*columns)
    for name, connection_id in connection_ids.items():
        entities = integrations()[name].entity_names()
        runs = await request_syncs(
            runtime.db, None, connection_id=connection_id, entities=entities, mode="incremental",
            trigger="manual", now=runtime.clock(),
        )  # fmt: skip
        for run in runs:
            finished = await runtime.engine.execute_run(run.id)
            if finished is None:
                continue
            counts = [str(value) for value in finished.counts.values()]
            table.add_row(name, finished.entity, finished.status, *counts, finished.error or "")
    console.print(table)


async def _show_purchase_orders(runtime: Runtime, connection_ids: dict[str, str]) -> None:
    """Print two purchase orders per system, and whether every system returns them in one shape."""
    shapes: dict[str, frozenset[str]] = {}
    for name, connection_id in connection_ids.items():
        async with runtime.db.read() as db:
            rows = await list_records(
                db, RecordFilter(entity="purchase_order", connection_id=connection_id), after=None, limit=2
            )
        for row in rows:
            order = record_json(row, name, include_remote_data=False)
            shapes[name] = frozenset(order)
            shown = ("id", "integration", "number", "status", "total_gross", "currency")
            summary = {key: order[key] for key in shown}
            console.print_json(json.dumps(summary))
    if len(set(shapes.values())) == 1:
        console.print(f"GET /v1/purchase-orders returns one shape for: {', '.join(sorted(shapes))}")
    elif shapes:
        console.print("[red]purchase orders differ in shape between systems[/red]")


def _print_urls(base_url: str, key: str) -> None:
    console.print(f"\nInterlink serves on {base_url}  (interactive docs: {base_url}/docs)")
    console.print(f"operator API key: {key}")
    console.print(f'try: curl -H "Authorization: Bearer {key}" "{base_url}/v1/purchase-orders?page_size=2"')
    console.print("press Ctrl+C to stop")
