"""A check over the whole test session that no known secret reaches a log record.

Loaded from ``tests/conftest.py`` through ``pytest_plugins``, so it receives
the logs of every test. A handler on the root logger formats each record (message
and traceback, before any redaction) and keeps the text. At the end of the
session every kept text is searched once for:

- the secrets that tests register with ``register_secret(value)``;
- every secret credential that any test stores: ``CredentialBox.encrypt`` is
  wrapped for the session and registers the values of secret fields (the
  fields that an installed integration declares secret, and the names in
  ``ALWAYS_SECRET_FIELDS``);
- anything shaped like an API key (``ilk_``), a connection token (``ilc_``)
  or a webhook signing secret (``whsec_``), so every token a test sees is
  covered without registering it.

A match fails the session, with the test, the logger and the secret masked.
For the records to exist at all, the root logger is set to INFO and the
``interlink`` loggers to DEBUG while the session runs. ``httpx`` and
``httpcore`` stay at WARNING, as ``interlink.logs.configure_logging`` sets them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import pytest

from interlink.connectors.registry import integrations
from interlink.crypto import CredentialBox

# Credential names that are secret whatever the integration declares: OAuth
# tokens renewed by a connector, and the webhook signing secret.
ALWAYS_SECRET_FIELDS = frozenset(
    {"password", "secret", "client_secret", "access_token", "refresh_token", "token_secret"}
)
# Shorter values are too likely to occur in unrelated text; tests use longer secrets.
MIN_SECRET_LENGTH = 8
# A token's prefix and at least 12 of its characters: a token shortened to its
# first few characters, as key listings show it, is no leak.
TOKEN_PATTERN = re.compile(r"\b(?:ilk|ilc)_[A-Za-z0-9_\-]{12,}|\bwhsec_[A-Za-z0-9+/=]{12,}")
_FORMAT = "%(levelname)s %(name)s %(message)s"


@dataclass(frozen=True)
class Leak:
    """A log record that contained a secret."""

    test: str
    logger: str
    masked_text: str


class SecretLogCapture(logging.Handler):
    """Keeps the formatted text of every record and finds the secrets in it."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(logging.Formatter(_FORMAT))
        self.secrets: set[str] = set()
        self.texts: list[tuple[str, str, str]] = []  # (test, logger, formatted record)
        self.current_test = "(session set-up)"

    def register(self, value: str) -> None:
        if len(value) >= MIN_SECRET_LENGTH:
            self.secrets.add(value)

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append((self.current_test, record.name, self.format(record)))

    def leaks(self) -> list[Leak]:
        """Return every kept record that contains a registered secret or a token."""
        patterns = [TOKEN_PATTERN]
        if self.secrets:
            # Longest first, so a secret that contains another is masked whole.
            ordered = sorted(self.secrets, key=len, reverse=True)
            patterns.append(re.compile("|".join(re.escape(secret) for secret in ordered)))
        found = []
        for test, logger_name, text in self.texts:
            masked = text
            for pattern in patterns:
                masked = pattern.sub(_mask, masked)
            if masked != text:
                found.append(Leak(test, logger_name, masked))
        return found


def _mask(match: re.Match[str]) -> str:
    return f"<secret {match.group()[:4]}...>"


_capture = SecretLogCapture()


def register_secret(value: str) -> str:
    """Register a value that must never appear in a log record of this session; return it."""
    _capture.register(value)
    return value


def secret_field_names() -> frozenset[str]:
    """Return the credential names that are secret in any installed integration, and the fixed ones."""
    names = set(ALWAYS_SECRET_FIELDS)
    for integration in integrations().values():
        for scheme in integration.auth_schemes:
            names.update(field.name for field in scheme.fields if field.secret)
    return frozenset(names)


@pytest.fixture(scope="session", autouse=True)
def secret_log_capture() -> Iterator[SecretLogCapture]:
    """Capture every log record of the session, and fail at its end if one contains a secret."""
    root = logging.getLogger()
    watched = {name: logging.getLogger(name) for name in ("interlink", "httpx", "httpcore")}
    saved_levels = {name: logger.level for name, logger in watched.items()}
    saved_root_level = root.level
    root.addHandler(_capture)
    if saved_root_level > logging.INFO:
        root.setLevel(logging.INFO)
    watched["interlink"].setLevel(logging.DEBUG)
    watched["httpx"].setLevel(logging.WARNING)
    watched["httpcore"].setLevel(logging.WARNING)

    secret_names = secret_field_names()
    original_encrypt = CredentialBox.encrypt

    def encrypt_and_register(box: CredentialBox, credentials: Mapping[str, str]) -> bytes:
        for name, value in credentials.items():
            if name in secret_names:
                _capture.register(str(value))
        return original_encrypt(box, credentials)

    CredentialBox.encrypt = encrypt_and_register  # type: ignore[method-assign, assignment]
    try:
        yield _capture
    finally:
        CredentialBox.encrypt = original_encrypt  # type: ignore[method-assign]
        root.removeHandler(_capture)
        root.setLevel(saved_root_level)
        for name, logger in watched.items():
            logger.setLevel(saved_levels[name])

    leaks = _capture.leaks()
    records, secrets = len(_capture.texts), len(_capture.secrets)
    _capture.texts.clear()
    if leaks:
        report_lines = "\n".join(
            f"  {leak.test} [{leak.logger}] {leak.masked_text[:300]}" for leak in leaks[:20]
        )
        pytest.fail(
            f"{len(leaks)} of {records} log records contain a secret "
            f"({secrets} secrets registered, plus ilk_/ilc_/whsec_ tokens):\n{report_lines}",
            pytrace=False,
        )


@pytest.fixture(autouse=True)
def _name_test_in_log_capture(request: pytest.FixtureRequest) -> Iterator[None]:
    """Attribute the records to the test that is running."""
    _capture.current_test = request.node.nodeid
    yield
    _capture.current_test = "(between tests)"
