"""How Matrix error bodies are classified; cases Synapse 1.163 does not produce on its own."""

from __future__ import annotations

import httpx
import pytest

from interlink.connectors.errors import (
    AuthenticationError,
    PermissionDenied,
    RateLimited,
    SourceRejected,
    SourceUnavailable,
)
from interlink.connectors.matrix.client import (
    NotFound,
    UnknownToken,
    classify_response,
    normalize_homeserver_url,
)

REQUEST = httpx.Request("GET", "https://matrix.example.org/_matrix/client/v3/sync?since=s1")


def response(status: int, body: object, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers, request=REQUEST)


def test_retry_after_ms_without_header() -> None:
    error = classify_response(response(429, {"errcode": "M_LIMIT_EXCEEDED", "retry_after_ms": 1500}))
    assert isinstance(error, RateLimited)
    assert error.retry_after == 1.5


def test_retry_after_header_wins() -> None:
    error = classify_response(
        response(429, {"errcode": "M_LIMIT_EXCEEDED", "retry_after_ms": 1500}, {"Retry-After": "3"})
    )
    assert isinstance(error, RateLimited)
    assert error.retry_after == 3.0


def test_soft_logout_flag_is_kept() -> None:
    error = classify_response(response(401, {"errcode": "M_UNKNOWN_TOKEN", "soft_logout": True}))
    assert isinstance(error, UnknownToken)
    assert error.soft_logout is True
    assert error.reason_code == "token_revoked"


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (401, {"errcode": "M_UNKNOWN_TOKEN"}, UnknownToken),
        (401, {"errcode": "M_MISSING_TOKEN"}, AuthenticationError),
        (403, {"errcode": "M_USER_DEACTIVATED"}, AuthenticationError),
        (403, {"errcode": "M_FORBIDDEN"}, PermissionDenied),
        (404, {"errcode": "M_NOT_FOUND"}, NotFound),
        (400, {"errcode": "M_BAD_JSON"}, SourceRejected),
        (502, "Bad Gateway", SourceUnavailable),
    ],
)
def test_errcode_classification(status: int, body: object, expected: type[Exception]) -> None:
    assert type(classify_response(response(status, body))) is expected


def test_success_is_not_an_error() -> None:
    assert classify_response(response(200, {"next_batch": "s2"})) is None


def test_error_message_hides_query_secrets() -> None:
    leaky = httpx.Request("GET", "https://matrix.example.org/_matrix/client/v3/sync?access_token=abc")
    error = classify_response(httpx.Response(400, json={"errcode": "M_UNKNOWN"}, request=leaky))
    assert error is not None
    assert "abc" not in str(error)


@pytest.mark.parametrize("value", ["matrix.example.org", "ftp://matrix.example.org", ""])
def test_homeserver_url_must_be_http(value: str) -> None:
    with pytest.raises(SourceRejected, match="homeserver_url"):
        normalize_homeserver_url(value)
