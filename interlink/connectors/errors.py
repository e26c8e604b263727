"""Errors a connector raises, classified by type so that no caller parses messages.

    InterlinkError
    └── ConnectorError
        ├── RetryableError            a later attempt can succeed
        │   ├── SourceTimeout         the source did not answer in time
        │   ├── SourceUnavailable     connection refused, reset, or HTTP 5xx
        │   └── RateLimited           HTTP 429 or a vendor's own rate-limit code
        └── FinalError                retrying the same request cannot help
            ├── AuthenticationError   credentials rejected after one repair attempt
            ├── PermissionDenied      authenticated, but not allowed
            ├── SourceRejected        the source rejected the request (other 4xx)
            └── SourceDataError       the source answered something unusable

An ``AuthenticationError`` moves the connection to ``reauthorization_required``.
"""

from __future__ import annotations

from interlink.errors import InterlinkError


class ConnectorError(InterlinkError):
    """A call to a source system failed."""

    reason_code: str = "source_error"

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class RetryableError(ConnectorError):
    """The call may succeed if made again later."""

    def __init__(
        self, message: str, *, status_code: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status_code=status_code)
        self.retry_after = retry_after


class SourceTimeout(RetryableError):
    reason_code = "timeout"


class SourceUnavailable(RetryableError):
    reason_code = "unreachable"


class RateLimited(RetryableError):
    reason_code = "rate_limited"


class FinalError(ConnectorError):
    """Retrying the same call cannot help."""


class AuthenticationError(FinalError):
    """The source rejected the credentials and the connector could not repair the session."""

    def __init__(
        self, message: str, *, status_code: int | None = None, reason_code: str = "credentials_invalid"
    ) -> None:
        super().__init__(message, status_code=status_code)
        self.reason_code = reason_code


class PermissionDenied(FinalError):
    reason_code = "permission_missing"


class SourceRejected(FinalError):
    reason_code = "request_rejected"


class SourceDataError(FinalError):
    reason_code = "invalid_source_data"
