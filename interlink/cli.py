"""The ``interlink`` command line."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from interlink.connections import InvalidConnectionInput, create_connection, resolve_integration
from interlink.crypto import SecretKeyError, generate_secret_key, generate_token, hash_token
from interlink.errors import InterlinkError
from interlink.logs import configure_logging
from interlink.model import ConnectionSettings
from interlink.runtime import Runtime, freeze_startup_objects
from interlink.secrets_rotation import KeyRing, RotationReport, RotationStatus, rotate_all, rotation_status
from interlink.settings import Settings
from interlink.store.api_keys import insert_api_key, list_api_keys, revoke_api_key
from interlink.store.connections import get_connection, list_connections
from interlink.store.migrate import upgrade
from interlink.store.runs import RunRow
from interlink.sync.requests import request_syncs

app = typer.Typer(help="Interlink: one API for ERP, maintenance and chat systems.", no_args_is_help=True)
connections_app = typer.Typer(help="Create and list connections.", no_args_is_help=True)
api_keys_app = typer.Typer(help="Create, list and revoke operator API keys.", no_args_is_help=True)
secret_key_app = typer.Typer(
    help="Without a command: print a new Fernet key. With one: check or run a key rotation."
)
app.add_typer(connections_app, name="connections")
app.add_typer(api_keys_app, name="api-keys")
app.add_typer(secret_key_app, name="secret-key")

stderr = Console(stderr=True)


def _stdout() -> Console:
    # Piped output keeps whole ids on one line instead of folding them to a terminal's width.
    return Console() if sys.stdout.isatty() else Console(width=250)


def _settings(*, service: bool = False) -> Settings:
    """Read the settings and set up logging: INFO for services, WARNING for one-shot commands."""
    settings = Settings()
    level = settings.log_level if service or "INTERLINK_LOG_LEVEL" in os.environ else "WARNING"
    configure_logging(level, json_lines=settings.log_format == "json")
    return settings


def _runtime(settings: Settings, *, workers: bool = True) -> Runtime:
    try:
        return Runtime(settings, workers=workers)
    except SecretKeyError as exc:
        stderr.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc


def _fail(message: str, code: int = 1) -> typer.Exit:
    stderr.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port to listen on.")] = 8000,
    workers: Annotated[
        bool, typer.Option("--workers/--no-workers", help="Run syncs in this process.")
    ] = True,
) -> None:
    """Serve the API, with the sync workers and the reaper, in one process."""
    import uvicorn

    settings = _settings(service=True)
    runtime = _runtime(settings, workers=workers)
    api = runtime.app()
    freeze_startup_objects()
    uvicorn.run(api, host=host, port=port, log_config=None, proxy_headers=False)


@app.command()
def migrate() -> None:
    """Apply the database migrations (PostgreSQL needs this before `serve`)."""
    settings = _settings()
    runtime = _runtime(settings, workers=False)

    async def run() -> None:
        await upgrade(runtime.db)
        await runtime.db.dispose()

    asyncio.run(run())
    stderr.print("database is up to date")


@secret_key_app.callback(invoke_without_command=True)
def secret_key(context: typer.Context) -> None:
    """Print a new Fernet key for INTERLINK_SECRET_KEY, or check and run a key rotation."""
    if context.invoked_subcommand is None:
        typer.echo(generate_secret_key())


@secret_key_app.command("status")
def secret_key_status() -> None:
    """Count the stored secrets per key; exit 1 while a value still needs a key after the first."""
    settings = _settings()
    runtime = _runtime(settings, workers=False)

    async def run() -> RotationStatus:
        try:
            await runtime.start()
            return await rotation_status(runtime.db, KeyRing(settings.secret_key))
        finally:
            await runtime.stop()

    status = asyncio.run(run())
    positions = [f"key {number}" for number in range(1, len(status.per_key()) + 1)]
    table = Table("column", *positions, "unreadable")
    for column in status.columns:
        table.add_row(column.column, *(str(count) for count in column.per_key), str(column.unreadable))
    _stdout().print(table)
    if status.unreadable:
        raise _fail(
            f"{status.unreadable} stored values cannot be decrypted with any key. "
            "Add the key that encrypted them to INTERLINK_SECRET_KEY"
        )
    if status.under_older_keys:
        raise _fail(
            f"{status.under_older_keys} stored values still need a key after the first. "
            "Run `interlink secret-key rotate` or let a running server finish its rotation"
        )
    if len(status.per_key()) > 1:
        stderr.print("every stored secret uses the first key, so the keys after it can be removed")
    else:
        stderr.print("every stored secret uses the configured key")


@secret_key_app.command("rotate")
def secret_key_rotate(
    batch_size: Annotated[int, typer.Option(min=1, help="Values re-encrypted per transaction.")] = 100,
) -> None:
    """Re-encrypt every stored secret with the first key of INTERLINK_SECRET_KEY."""
    settings = _settings()
    runtime = _runtime(settings, workers=False)

    async def run() -> RotationReport:
        try:
            await runtime.start()
            return await rotate_all(runtime.db, KeyRing(settings.secret_key), batch_size=batch_size)
        finally:
            await runtime.stop()

    report = asyncio.run(run())
    stderr.print(f"re-encrypted {report.rotated} of {report.scanned} stored secrets")
    if report.unreadable:
        raise _fail(
            f"{report.unreadable} stored values cannot be decrypted with any key. "
            "Add the key that encrypted them to INTERLINK_SECRET_KEY"
        )


@app.command()
def sync(
    connection_id: Annotated[str, typer.Argument(help="The connection to sync (con_...).")],
    entity: Annotated[
        list[str] | None,
        typer.Option("--entity", help="Entity to sync; repeat for several. Default: all enabled."),
    ] = None,
    full: Annotated[
        bool, typer.Option("--full", help="Read the whole historical window and reconcile deletions.")
    ] = False,
) -> None:
    """Run a sync in this process with a progress bar, print a summary, exit non-zero on failure."""
    settings = _settings()
    runtime = _runtime(settings, workers=False)
    runs = asyncio.run(_sync(runtime, connection_id, entity, "full" if full else "incremental"))
    table = Table("entity", "status", "fetched", "created", "updated", "unchanged", "deleted", "error")
    for run in runs:
        table.add_row(run.entity, run.status, *(str(v) for v in run.counts.values()), run.error or "")
    _stdout().print(table)
    if any(run.status != "succeeded" for run in runs):
        raise typer.Exit(1)


async def _sync(runtime: Runtime, connection_id: str, entities: list[str] | None, mode: str) -> list[RunRow]:
    try:
        await runtime.start()
        freeze_startup_objects()
        async with runtime.db.read() as db:
            connection = await get_connection(db, connection_id)
        if connection is None:
            raise _fail(f"connection {connection_id} not found; list them with: interlink connections list")
        integration = resolve_integration(connection.integration)
        enabled = (
            ConnectionSettings.model_validate(connection.settings).entities or integration.entity_names()
        )
        chosen = entities or enabled
        unknown = [name for name in chosen if name not in enabled]
        if unknown:
            raise _fail(
                f"entity {unknown[0]!r} is not enabled for {connection_id}; enabled: {', '.join(enabled)}"
            )
        queued = await request_syncs(
            runtime.db,
            None,
            connection_id=connection_id,
            entities=chosen,
            mode=mode,
            trigger="manual",
            now=runtime.clock(),
        )
        finished = []
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[counts]}"),
            TimeElapsedColumn(),
            console=stderr,
        ) as progress:
            for run in queued:
                task = progress.add_task(f"{run.entity} ({mode})", total=None, counts="")

                def report(current: RunRow, counts: Any, task: Any = task) -> None:
                    progress.update(task, counts=", ".join(f"{k} {v}" for k, v in counts.items()))

                result = await runtime.engine.execute_run(run.id, progress=report)
                if result is None:
                    raise _fail(
                        f"run {run.id} for {run.entity} is already running elsewhere; try again when it ends"
                    )
                progress.update(task, total=1, completed=1)
                finished.append(result)
        return finished
    finally:
        await runtime.stop()


def _read_credentials(path: Path | None) -> dict[str, str]:
    text = sys.stdin.read() if path is None or str(path) == "-" else path.read_text()
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(
            f'the credentials are not valid JSON ({exc}); give an object such as {{"url": "..."}}'
        ) from exc
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise _fail("the credentials must be a JSON object of strings")
    return {str(k): v for k, v in value.items()}


@connections_app.command("create")
def connections_create(
    integration: Annotated[str, typer.Option(help="Integration name, such as tryton.")],
    end_user: Annotated[
        str, typer.Option("--end-user", help="Your customer's id for the owner of this connection.")
    ],
    credentials_file: Annotated[
        Path | None,
        typer.Option("--credentials", help="JSON file with the credentials; '-' or absent: standard input."),
    ] = None,
    auth_scheme: Annotated[
        str | None, typer.Option(help="Auth scheme, when the credentials fit several.")
    ] = None,
    history_days: Annotated[int, typer.Option(help="Historical window of full syncs, in days.")] = 365,
) -> None:
    """Create a connection (credentials are checked live) and print it with its token as JSON."""
    settings = _settings()
    runtime = _runtime(settings, workers=False)
    credentials = _read_credentials(credentials_file)

    async def run() -> dict[str, Any]:
        try:
            await runtime.start()
            created = await create_connection(
                runtime.db,
                runtime.credentials,
                runtime.http_factory,
                integration_name=integration,
                end_user={"id": end_user},
                credentials=credentials,
                auth_scheme=auth_scheme,
                settings=ConnectionSettings(history_days=history_days),
            )
        finally:
            await runtime.stop()
        return {"id": created.connection.id, "integration": integration, "connection_token": created.token}

    try:
        typer.echo(json.dumps(asyncio.run(run()), indent=2))
    except InvalidConnectionInput as exc:
        raise _fail(str(exc), 2) from exc


@connections_app.command("list")
def connections_list() -> None:
    """List connections with their status."""
    settings = _settings()
    runtime = _runtime(settings, workers=False)

    async def run() -> list[Any]:
        try:
            await runtime.start()
            async with runtime.db.read() as db:
                return list(await list_connections(db, after_id=None, limit=10_000))
        finally:
            await runtime.stop()

    table = Table("id", "integration", "end user", "status", "reason", "created")
    for row in asyncio.run(run()):
        table.add_row(
            row.id,
            row.integration,
            row.end_user_id,
            row.status,
            row.status_reason or "",
            row.created_at.isoformat(),
        )
    _stdout().print(table)


@api_keys_app.command("create")
def api_keys_create(
    name: Annotated[str, typer.Option(help="What the key is for, shown in listings.")],
    expires_in_days: Annotated[
        int | None, typer.Option(help="Days until the key expires; default never.")
    ] = None,
) -> None:
    """Create an operator API key and print it, alone, on standard output (it is shown once)."""
    settings = _settings()
    runtime = _runtime(settings, workers=False)
    key = generate_token("ilk")
    expires_at = datetime.now(UTC) + timedelta(days=expires_in_days) if expires_in_days else None

    async def run() -> None:
        try:
            await runtime.start()
            async with runtime.db.write() as db:
                await insert_api_key(
                    db, name=name, key_hash=hash_token(key), key_prefix=key[:8], expires_at=expires_at
                )
        finally:
            await runtime.stop()

    asyncio.run(run())
    typer.echo(key)


@api_keys_app.command("list")
def api_keys_list() -> None:
    """List API keys (never the keys themselves)."""
    settings = _settings()
    runtime = _runtime(settings, workers=False)

    async def run() -> list[Any]:
        try:
            await runtime.start()
            async with runtime.db.read() as db:
                return list(await list_api_keys(db))
        finally:
            await runtime.stop()

    table = Table("id", "name", "prefix", "created", "expires", "revoked")
    for row in asyncio.run(run()):
        table.add_row(
            row.id,
            row.name,
            row.key_prefix,
            row.created_at.isoformat(),
            row.expires_at.isoformat() if row.expires_at else "never",
            row.revoked_at.isoformat() if row.revoked_at else "",
        )
    _stdout().print(table)


@api_keys_app.command("revoke")
def api_keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (key_...), from `api-keys list`.")],
) -> None:
    """Revoke an API key at once."""
    settings = _settings()
    runtime = _runtime(settings, workers=False)

    async def run() -> bool:
        try:
            await runtime.start()
            async with runtime.db.write() as db:
                return await revoke_api_key(db, key_id)
        finally:
            await runtime.stop()

    if not asyncio.run(run()):
        raise _fail(f"no active API key {key_id}; see: interlink api-keys list")
    stderr.print(f"revoked {key_id}")


@app.command()
def demo(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port of the API.")] = 8000,
    directory: Annotated[Path, typer.Option(help="Where the demo keeps its Tryton and SQLite files.")] = Path(
        ".interlink-demo"
    ),
    purchases: Annotated[int, typer.Option(help="Purchase orders to seed in the demo Tryton.")] = 30,
    tryton: Annotated[
        bool, typer.Option("--tryton/--no-tryton", help="Start a local Tryton ERP too.")
    ] = True,
) -> None:
    """Start a throwaway Tryton with seeded data, link it, sync it, and serve the API until interrupted."""
    from interlink.demo.run import run_demo

    configure_logging("INFO")
    freeze_startup_objects()
    try:
        run_demo(host=host, port=port, directory=directory.resolve(), purchases=purchases, tryton=tryton)
    except InterlinkError as exc:
        raise _fail(str(exc)) from exc


@app.command()
def sandbox(
    name: Annotated[str, typer.Argument(help="The sandbox to serve, such as dynamics_bc or netsuite.")],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port to listen on.")] = 8100,
    size: Annotated[int, typer.Option(help="Number of seeded purchase or work orders.")] = 50,
    seed: Annotated[int, typer.Option(help="Seed of the generated data; one seed gives one data set.")] = 0,
) -> None:
    """Serve one vendor sandbox alone and print the credentials that connect to it."""
    import importlib

    import uvicorn

    from interlink.demo.run import sandbox_modules

    modules = dict(sandbox_modules())
    if name not in modules:
        raise _fail(f"unknown sandbox {name!r}; available: {', '.join(sorted(modules)) or '(none)'}")
    module = importlib.import_module(f"interlink.sandbox.{name}")
    configure_logging("INFO")
    credentials = module.demo_credentials(f"http://{host}:{port}")
    stderr.print(f"sandbox {name} on http://{host}:{port}; connect with the credentials below")
    typer.echo(json.dumps({"integration": name, "credentials": credentials}, indent=2))
    uvicorn.run(module.create_app(size=size, seed=seed), host=host, port=port, log_config=None)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
