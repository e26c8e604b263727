"""Plain-language explanations of why a system rejected the credentials a user typed."""

from __future__ import annotations

from dataclasses import dataclass

from interlink.connections import InvalidConnectionInput
from interlink.connectors.base import AuthScheme
from interlink.connectors.errors import (
    AuthenticationError,
    PermissionDenied,
    RetryableError,
    SourceDataError,
    SourceRejected,
)


@dataclass(frozen=True)
class Explanation:
    """The text of a failure on the page: a sentence for the user, its field, and the technical detail."""

    message: str
    field: str | None = None
    detail: str | None = None


def explain(label: str, scheme: AuthScheme, exc: InvalidConnectionInput) -> Explanation:
    """Explain a failed check of credentials for ``label`` (the integration's name) in plain words."""
    cause = exc.__cause__
    detail = str(cause) if cause is not None else None
    if isinstance(cause, AuthenticationError):
        return Explanation(
            f"{label} did not accept these credentials. Check each value and try again.", None, detail
        )
    if isinstance(cause, PermissionDenied):
        return Explanation(
            f"{label} accepted the sign-in, but the account may not read the data needed. "
            f"Ask your {label} administrator for access, then try again.",
            None,
            detail,
        )
    if isinstance(cause, RetryableError):
        return Explanation(
            f"Interlink could not reach {label}. Check the address fields, or try again in a few minutes.",
            None,
            detail,
        )
    if isinstance(cause, SourceRejected | SourceDataError):
        return Explanation(f"{label} rejected the request. The details below say why.", None, detail)
    field = _field_name(exc.field)
    known = {credential.name for credential in scheme.fields}
    return Explanation(f"These credentials cannot be used: {exc}", field if field in known else None, None)


def _field_name(field: str | None) -> str | None:
    if field is None or not field.startswith("credentials."):
        return None
    return field.removeprefix("credentials.")
