"""Verification of NetSuite Token-Based Authentication headers (OAuth 1.0a, RFC 5849, HMAC-SHA256).

Written apart from the connector's signing module on purpose, so that a
mistake in one side's signature base string shows up as a rejected request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import quote, unquote

# NetSuite rejects a timestamp further than this from its own clock, in seconds.
TIMESTAMP_TOLERANCE = 300
_FIELD = re.compile(r'(\w+)="([^"]*)"')


def _encode(value: str) -> str:
    return quote(value, safe="-._~")


class LoginRejected(ValueError):
    """The Authorization header does not authenticate; the reason is for the sandbox log only."""


@dataclass
class TokenVerifier:
    """The account's integration and token, and the nonces already used."""

    account_id: str
    consumer_key: str
    consumer_secret: str
    token_id: str
    token_secret: str
    used_nonces: set[str] = field(default_factory=set)

    def verify(
        self,
        method: str,
        url_without_query: str,
        query: Iterable[tuple[str, str]],
        header: str,
        now: datetime,
    ) -> None:
        """Raise ``LoginRejected`` unless ``header`` signs this request with the account's token."""
        scheme, _, rest = header.partition(" ")
        if scheme != "OAuth":
            raise LoginRejected("the Authorization header is not an OAuth header")
        fields = {name: unquote(value) for name, value in _FIELD.findall(rest)}
        if fields.get("realm") != self.account_id:
            raise LoginRejected("realm is not the account id")
        if fields.get("oauth_signature_method") != "HMAC-SHA256":
            raise LoginRejected("the signature method is not HMAC-SHA256")
        if (fields.get("oauth_consumer_key"), fields.get("oauth_token")) != (
            self.consumer_key,
            self.token_id,
        ):
            raise LoginRejected("unknown consumer key or token")
        timestamp = fields.get("oauth_timestamp", "")
        if not timestamp.isdigit() or abs(int(timestamp) - now.timestamp()) > TIMESTAMP_TOLERANCE:
            raise LoginRejected("the timestamp is missing or too far from the server clock")
        nonce = fields.get("oauth_nonce", "")
        if not nonce or nonce in self.used_nonces:
            raise LoginRejected("the nonce is missing or was used before")
        protocol = [
            (name, value) for name, value in fields.items() if name not in ("realm", "oauth_signature")
        ]
        pairs = sorted((_encode(name), _encode(value)) for name, value in [*query, *protocol])
        normalized = "&".join(f"{name}={value}" for name, value in pairs)
        base = "&".join((method.upper(), _encode(url_without_query), _encode(normalized)))
        key = f"{_encode(self.consumer_secret)}&{_encode(self.token_secret)}".encode()
        expected = base64.b64encode(hmac.new(key, base.encode(), hashlib.sha256).digest()).decode()
        if not hmac.compare_digest(expected, fields.get("oauth_signature", "")):
            raise LoginRejected("the signature does not match")
        self.used_nonces.add(nonce)
