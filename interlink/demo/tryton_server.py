"""Prepare a seeded Tryton 8.2 SQLite database and run trytond on copies of it.

``prepare_template`` builds the seeded database once per directory and keeps
it (a marker file records the parameters it was built with).
``TrytonServer`` copies that template under one or more database names into
its own directory and runs trytond on 127.0.0.1 on a free port.

trytond only serves logins on the databases it was started with (``-d``), so
a test suite that wants a fresh database per test starts one server with a
pool of copies and takes one copy per test with ``acquire_database``. The
demo starts a server with a single database and ``keep_existing=True`` so
that its data survives restarts.

The trytond, trytond-admin and seed processes run with the interpreter of
this process, so trytond and its modules must be installed beside it.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from types import TracebackType

import httpx

from interlink.demo import tryton_seed
from interlink.demo.tryton_seed import SeededUser, SeedManifest
from interlink.errors import InterlinkError

logger = logging.getLogger(__name__)

TEMPLATE_DATABASE = "interlink_demo"
ADMIN_LOGIN = "admin"
ADMIN_EMAIL = "admin@interlink-demo.example"
MODULES = ("purchase", "production_work")
LOOPBACK_HOST = "127.0.0.1"

# trytond rejects passwords shorter than its [password] length option, 8 by default.
MIN_PASSWORD_LENGTH = 8
MARKER_NAME = "template.complete.json"
LOG_TAIL_LINES = 40

# Upper bounds, not estimates. Measured on a 2-core Debian 12 machine:
# ``--all`` about 3 s, activating the modules about 12 s, seeding 30
# purchases about 21 s, trytond ready about 1 s after start.
ADMIN_TIMEOUT_SECONDS = 600.0
SEED_BASE_TIMEOUT_SECONDS = 300.0
SEED_TIMEOUT_PER_PURCHASE_SECONDS = 5.0
PORT_ATTEMPTS = 3


class TrytonServerError(InterlinkError):
    """A Tryton template or server could not be prepared, started or stopped."""


def trytond_script(name: str) -> Path:
    """Return the path of a trytond console script installed beside this interpreter."""
    return Path(sys.executable).parent / name


def prepare_template(directory: Path, *, purchases: int = 30, admin_password: str) -> Path:
    """Build the seeded template database in ``directory`` unless it is already there.

    Returns the path of the SQLite file. A complete template built with the
    same purchase count, admin password, seed script and trytond version is
    reused at once. Anything else in ``directory`` that belongs to the
    template is removed and rebuilt. Concurrent callers on the same directory
    wait for each other through a lock file.
    """
    check_password(admin_password)
    if purchases < 1:
        raise ValueError(f"purchases must be at least 1, got {purchases}")
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    database_path = directory / f"{TEMPLATE_DATABASE}.sqlite"

    with directory_lock(directory):
        marker = directory / MARKER_NAME
        if template_is_complete(marker, database_path, purchases, admin_password):
            logger.info("tryton_template.reused path=%s", database_path)
            return database_path

        started = time.monotonic()
        logger.info("tryton_template.building path=%s purchases=%d", database_path, purchases)
        remove_template_files(directory)
        config_path = write_config(directory / "template.conf", directory, port=None)
        database_path.touch()
        initialise_database(config_path, directory, admin_password)
        seed_database(config_path, directory, purchases)
        checkpoint(database_path)
        write_marker(marker, purchases, admin_password)
        logger.info("tryton_template.built path=%s seconds=%.1f", database_path, time.monotonic() - started)
    return database_path


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(
            f"admin password must have at least {MIN_PASSWORD_LENGTH} characters, got {len(password)}"
        )


@contextlib.contextmanager
def directory_lock(directory: Path) -> Iterator[None]:
    with open(directory / ".lock", "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def template_fingerprint() -> dict[str, str]:
    """Return what, besides the parameters, decides the content of a template."""
    from importlib.metadata import version

    seed_source = Path(tryton_seed.__file__).read_bytes()
    return {
        "trytond": version("trytond"),
        "seed_script_sha256": hashlib.sha256(seed_source).hexdigest(),
    }


def hash_password(password: str, salt: bytes) -> str:
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt, 100_000).hex()


def template_is_complete(marker: Path, database_path: Path, purchases: int, admin_password: str) -> bool:
    if not (marker.is_file() and database_path.is_file()):
        return False
    try:
        recorded = json.loads(marker.read_text())
        salt = bytes.fromhex(recorded["password_salt"])
    except (ValueError, KeyError) as error:
        logger.warning("tryton_template.invalid_marker path=%s error=%s", marker, error)
        return False
    expected = {
        **template_fingerprint(),
        "purchases": purchases,
        "password_salt": recorded["password_salt"],
        "password_pbkdf2_sha256": hash_password(admin_password, salt),
    }
    if recorded != expected:
        logger.info("tryton_template.outdated path=%s", marker)
        return False
    return True


def write_marker(marker: Path, purchases: int, admin_password: str) -> None:
    salt = secrets.token_bytes(16)
    content = {
        **template_fingerprint(),
        "purchases": purchases,
        "password_salt": salt.hex(),
        "password_pbkdf2_sha256": hash_password(admin_password, salt),
    }
    marker.write_text(json.dumps(content, indent=2) + "\n")


def remove_template_files(directory: Path) -> None:
    names = [
        MARKER_NAME,
        f"{TEMPLATE_DATABASE}.sqlite",
        f"{TEMPLATE_DATABASE}.sqlite-wal",
        f"{TEMPLATE_DATABASE}.sqlite-shm",
        f"{TEMPLATE_DATABASE}.seed.json",
    ]
    for name in names:
        (directory / name).unlink(missing_ok=True)


def write_config(path: Path, database_directory: Path, *, port: int | None) -> Path:
    lines = [
        "[database]",
        "uri = sqlite://",
        f"path = {database_directory}",
        "",
        "[web]",
        # Without a root inside the directory trytond serves static files from ~/www.
        f"root = {database_directory / 'www'}",
    ]
    if port is not None:
        lines.append(f"listen = {LOOPBACK_HOST}:{port}")
    path.write_text("\n".join(lines) + "\n")
    return path


def child_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return this process's environment without trytond settings, in UTC, plus ``extra``.

    trytond reads ``TRYTOND_<SECTION>__<OPTION>`` variables as configuration,
    which would override the generated configuration file. On SQLite, trytond
    8.2 takes ``create_date`` and ``write_date`` from ``datetime.now()``, the
    local time of its process, so ``TZ=UTC`` makes them naive UTC on any host.
    """
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith(("TRYTOND_", "TRYTONPASSFILE"))
    }
    environment["TZ"] = "UTC"
    environment.update(extra or {})
    return environment


def run_logged(
    command: Sequence[str], log_path: Path, *, timeout: float, environment: Mapping[str, str]
) -> None:
    started = time.monotonic()
    logger.info("tryton_command.started command=%s log=%s", command[0], log_path)
    with open(log_path, "wb") as log_file:
        try:
            completed = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=dict(environment),
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as error:
            raise TrytonServerError(
                f"{' '.join(command)} timed out after {timeout:.0f} s; log tail:\n{log_tail(log_path)}"
            ) from error
    if completed.returncode != 0:
        raise TrytonServerError(
            f"{' '.join(command)} failed with exit code {completed.returncode}; "
            f"log tail:\n{log_tail(log_path)}"
        )
    logger.info("tryton_command.finished command=%s seconds=%.1f", command[0], time.monotonic() - started)


def log_tail(log_path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = log_path.read_text(errors="replace")
    except OSError as error:
        return f"(log {log_path} not readable: {error})"
    return "\n".join(text.splitlines()[-lines:])


def initialise_database(config_path: Path, directory: Path, admin_password: str) -> None:
    admin = str(trytond_script("trytond-admin"))
    password_file = directory / ".admin-password"
    password_file.touch(mode=0o600)
    password_file.write_text(admin_password + "\n")
    try:
        environment = child_environment({"TRYTONPASSFILE": str(password_file)})
        run_logged(
            [admin, "-c", str(config_path), "-d", TEMPLATE_DATABASE, "--all", "--email", ADMIN_EMAIL],
            directory / "admin-all.log",
            timeout=ADMIN_TIMEOUT_SECONDS,
            environment=environment,
        )
        run_logged(
            [
                admin,
                "-c",
                str(config_path),
                "-d",
                TEMPLATE_DATABASE,
                "-u",
                *MODULES,
                "--activate-dependencies",
            ],
            directory / "admin-modules.log",
            timeout=ADMIN_TIMEOUT_SECONDS,
            environment=environment,
        )
    finally:
        password_file.unlink(missing_ok=True)


def seed_database(config_path: Path, directory: Path, purchases: int) -> None:
    timeout = SEED_BASE_TIMEOUT_SECONDS + SEED_TIMEOUT_PER_PURCHASE_SECONDS * purchases
    run_logged(
        [
            sys.executable,
            tryton_seed.__file__,
            str(config_path),
            TEMPLATE_DATABASE,
            "--purchases",
            str(purchases),
        ],
        directory / "seed.log",
        timeout=timeout,
        environment=child_environment(),
    )


def checkpoint(database_path: Path) -> None:
    """Fold the write-ahead log into the database file so one file is the whole database."""
    with contextlib.closing(sqlite3.connect(database_path)) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def copy_database(source: Path, target: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    with (
        contextlib.closing(sqlite3.connect(source)) as source_connection,
        contextlib.closing(sqlite3.connect(target)) as target_connection,
    ):
        source_connection.backup(target_connection)


def free_port() -> int:
    """Return a port that was free on 127.0.0.1 a moment ago.

    Another process can take it before trytond binds it, so the caller
    retries with a new port when trytond fails with "Address already in use".
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK_HOST, 0))
        port: int = probe.getsockname()[1]
        return port


class TrytonServer:
    """A trytond process on 127.0.0.1 serving copies of a seeded template database.

    Use it as a context manager or call ``start`` and ``stop``. The server
    stores its configuration, databases and log in ``directory``.
    """

    def __init__(
        self,
        template: Path,
        directory: Path,
        *,
        admin_password: str,
        database_names: Sequence[str] = (TEMPLATE_DATABASE,),
        keep_existing: bool = False,
        port: int | None = None,
        startup_timeout: float = 60.0,
        stop_timeout: float = 10.0,
    ) -> None:
        """Configure a server. Nothing is copied or started before ``start``.

        ``keep_existing`` keeps database files already in ``directory``
        instead of replacing them with fresh copies of the template. ``port``
        None picks a free port at start.
        """
        if not database_names:
            raise ValueError("database_names must name at least one database")
        if len(set(database_names)) != len(database_names):
            raise ValueError(f"database_names contains duplicates: {list(database_names)}")
        self.template = template.resolve()
        self.directory = directory.resolve()
        self.admin_login = ADMIN_LOGIN
        self.admin_password = admin_password
        self.database_names = tuple(database_names)
        self.keep_existing = keep_existing
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.log_path = self.directory / "trytond.log"
        self._requested_port = port
        self._port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._manifest: SeedManifest | None = None
        self._unused = list(self.database_names)
        self._unused_lock = threading.Lock()

    @classmethod
    def with_copies(
        cls,
        template: Path,
        directory: Path,
        *,
        admin_password: str,
        copies: int,
        prefix: str = "interlink_test",
        startup_timeout: float = 60.0,
    ) -> TrytonServer:
        """Configure a server with ``copies`` fresh databases named ``<prefix>_01`` and so on.

        trytond loads every database at start. Measured on a 2-core machine,
        each copy adds about 0.6 s to the start and 17 MiB to the process.
        """
        if copies < 1:
            raise ValueError(f"copies must be at least 1, got {copies}")
        names = [f"{prefix}_{number:02d}" for number in range(1, copies + 1)]
        return cls(
            template,
            directory,
            admin_password=admin_password,
            database_names=names,
            startup_timeout=startup_timeout,
        )

    @property
    def pid(self) -> int | None:
        """Process id of the running trytond, or None when it is not running."""
        return self._process.pid if self._process is not None else None

    @property
    def port(self) -> int:
        if self._port is None:
            raise TrytonServerError("the Tryton server is not started")
        return self._port

    @property
    def url(self) -> str:
        """Server root, such as ``http://127.0.0.1:8123/``."""
        return f"http://{LOOPBACK_HOST}:{self.port}/"

    def database_url(self, database: str) -> str:
        self._check_database(database)
        return f"{self.url}{database}/"

    def rpc_url(self, database: str) -> str:
        """JSON-RPC endpoint of one database."""
        return f"{self.database_url(database)}rpc/"

    def rest_url(self, database: str) -> str:
        """Root of the REST API of one database, followed by ``model/<model name>``."""
        return f"{self.database_url(database)}rest/"

    @property
    def manifest(self) -> SeedManifest:
        """Seed facts (REST key, extra users) read from the template."""
        if self._manifest is None:
            self._manifest = tryton_seed.read_manifest(self.template.with_suffix(".seed.json"))
        return self._manifest

    @property
    def rest_application_key(self) -> str:
        """Bearer key of the admin user for the REST API, the same in every copy."""
        return self.manifest.rest_application_key

    @property
    def users(self) -> list[SeededUser]:
        return self.manifest.users

    def acquire_database(self) -> str:
        """Return the name of a database copy that no caller has taken yet."""
        with self._unused_lock:
            if not self._unused:
                raise TrytonServerError(
                    f"all {len(self.database_names)} database copies are taken. "
                    "Start the server with more copies"
                )
            return self._unused.pop(0)

    def start(self) -> None:
        if self._process is not None:
            raise TrytonServerError(f"the Tryton server is already running with pid {self.pid}")
        self.directory.mkdir(parents=True, exist_ok=True)
        self._copy_databases()
        for attempt in range(1, PORT_ATTEMPTS + 1):
            port = self._requested_port or free_port()
            log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            self._spawn(port)
            try:
                self._wait_until_ready()
            except TrytonServerError:
                with open(self.log_path, "rb") as log_file:
                    log_file.seek(log_offset)
                    port_taken = b"Address already in use" in log_file.read()
                self.stop()
                if port_taken and self._requested_port is None and attempt < PORT_ATTEMPTS:
                    logger.warning("tryton_server.port_taken port=%d attempt=%d", port, attempt)
                    continue
                raise
            return

    def stop(self) -> None:
        """Stop trytond by its process id: SIGTERM, then SIGKILL after ``stop_timeout``."""
        process = self._process
        if process is None:
            return
        atexit.unregister(self.stop)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                logger.warning("tryton_server.kill pid=%d timeout=%.0f", process.pid, self.stop_timeout)
                process.kill()
                process.wait(timeout=self.stop_timeout)
        logger.info("tryton_server.stopped pid=%d exit_code=%s", process.pid, process.returncode)
        self._process = None
        self._port = None

    def __enter__(self) -> TrytonServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _check_database(self, database: str) -> None:
        if database not in self.database_names:
            raise TrytonServerError(
                f"database {database!r} is not served by this server, "
                f"which serves {list(self.database_names)}"
            )

    def _copy_databases(self) -> None:
        if not self.template.is_file():
            raise TrytonServerError(
                f"template database {self.template} not found. Run prepare_template first"
            )
        manifest = self.manifest
        for name in self.database_names:
            target = self.directory / f"{name}.sqlite"
            if self.keep_existing and target.is_file():
                logger.info("tryton_server.database_kept path=%s", target)
                continue
            copy_database(self.template, target)
            tryton_seed.write_manifest(self.directory / f"{name}.seed.json", replace(manifest, database=name))
        logger.info(
            "tryton_server.databases_ready directory=%s count=%d", self.directory, len(self.database_names)
        )

    def _spawn(self, port: int) -> None:
        config_path = write_config(self.directory / "trytond.conf", self.directory, port=port)
        command = [
            str(trytond_script("trytond")),
            "-c",
            str(config_path),
            "-vv",
            "-d",
            *self.database_names,
        ]
        # The child keeps its own copy of the log file descriptor.
        with open(self.log_path, "ab") as log_file:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=child_environment(),
            )
        self._port = port
        atexit.register(self.stop)
        logger.info(
            "tryton_server.started pid=%d port=%d databases=%d log=%s",
            self._process.pid,
            port,
            len(self.database_names),
            self.log_path,
        )

    def _wait_until_ready(self) -> None:
        assert self._process is not None
        started = time.monotonic()
        deadline = started + self.startup_timeout
        probe = {"id": 0, "method": "common.server.version", "params": []}
        # trust_env=False keeps proxy variables from sending the probe anywhere
        # but the local server.
        with httpx.Client(trust_env=False, timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    raise TrytonServerError(
                        f"trytond exited with code {self._process.returncode} during start; "
                        f"log tail:\n{log_tail(self.log_path)}"
                    )
                try:
                    response = client.post(f"{self.url}rpc/", json=probe)
                    version = response.json()["result"]
                except (httpx.HTTPError, ValueError, KeyError):
                    time.sleep(0.1)
                    continue
                logger.info(
                    "tryton_server.ready pid=%d version=%s seconds=%.1f",
                    self._process.pid,
                    version,
                    time.monotonic() - started,
                )
                return
        raise TrytonServerError(
            f"trytond did not respond on {self.url} within {self.startup_timeout:.0f} s; "
            f"log tail:\n{log_tail(self.log_path)}"
        )
