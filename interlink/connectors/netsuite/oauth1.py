"""OAuth 1.0a request signing (RFC 5849) for NetSuite Token-Based Authentication.

NetSuite signs every REST request with the consumer key and secret of an
integration record and the token id and secret of an access token, using
HMAC-SHA256 and ``realm`` set to the account id. No maintained OAuth 1.0a
library is a dependency of Interlink, so this module implements the parts of
RFC 5849 a client needs: the signature base string (section 3.4.1), the
HMAC signatures (section 3.4.2, with SHA-1 kept for the RFC's own test
vectors) and the ``Authorization`` header (section 3.5.1).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

SIGNATURE_METHODS = {"HMAC-SHA1": hashlib.sha1, "HMAC-SHA256": hashlib.sha256}


def percent_encode(value: str) -> str:
    """Encode ``value`` as RFC 5849 section 3.6 requires: UTF-8, every byte but unreserved ones escaped."""
    return quote(value.encode("utf-8"), safe="-._~")


def base_string_uri(url: str) -> str:
    """Return the base string URI (section 3.4.1.2): lowercase scheme and host, no default port, no query."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port
    default_port = {"http": 80, "https": 443}.get(scheme)
    netloc = host if port is None or port == default_port else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", "", ""))


def normalize_parameters(parameters: Iterable[tuple[str, str]]) -> str:
    """Encode, sort and join request parameters (section 3.4.1.3.2)."""
    encoded = sorted((percent_encode(name), percent_encode(value)) for name, value in parameters)
    return "&".join(f"{name}={value}" for name, value in encoded)


def signature_base_string(method: str, url: str, parameters: Iterable[tuple[str, str]]) -> str:
    """Build the signature base string (section 3.4.1.1) from the method, URL and all request parameters.

    ``parameters`` are the ``oauth_*`` protocol parameters (without
    ``oauth_signature`` and ``realm``) plus any form-encoded body parameters;
    the query parameters of ``url`` are added here.
    """
    query = parse_qsl(urlsplit(url).query, keep_blank_values=True)
    normalized = normalize_parameters([*query, *parameters])
    return "&".join(
        (percent_encode(method.upper()), percent_encode(base_string_uri(url)), percent_encode(normalized))
    )


def sign(base_string: str, consumer_secret: str, token_secret: str, method: str = "HMAC-SHA256") -> str:
    """Return the base64 HMAC of ``base_string`` keyed by the two encoded secrets (section 3.4.2)."""
    digest = SIGNATURE_METHODS.get(method)
    if digest is None:
        raise ValueError(f"unsupported signature method {method!r}; valid methods: HMAC-SHA1, HMAC-SHA256")
    key = f"{percent_encode(consumer_secret)}&{percent_encode(token_secret)}"
    mac = hmac.new(key.encode("ascii"), base_string.encode("ascii"), digest)
    return base64.b64encode(mac.digest()).decode("ascii")


@dataclass(frozen=True)
class TokenCredentials:
    """The four secrets of a NetSuite access token, with the account id used as ``realm``."""

    realm: str
    consumer_key: str
    consumer_secret: str
    token_id: str
    token_secret: str


def authorization_header(
    credentials: TokenCredentials,
    method: str,
    url: str,
    *,
    body_parameters: Sequence[tuple[str, str]] = (),
    signature_method: str = "HMAC-SHA256",
    timestamp: str | None = None,
    nonce: str | None = None,
) -> str:
    """Build the ``Authorization: OAuth ...`` header value for one request (section 3.5.1).

    ``timestamp`` and ``nonce`` default to the current Unix time and a fresh
    random value; tests pass fixed ones to compare with known signatures.
    """
    protocol = [
        ("oauth_consumer_key", credentials.consumer_key),
        ("oauth_token", credentials.token_id),
        ("oauth_signature_method", signature_method),
        ("oauth_timestamp", timestamp if timestamp is not None else str(int(time.time()))),
        ("oauth_nonce", nonce if nonce is not None else secrets.token_hex(16)),
        ("oauth_version", "1.0"),
    ]
    base = signature_base_string(method, url, [*protocol, *body_parameters])
    signature = sign(base, credentials.consumer_secret, credentials.token_secret, signature_method)
    fields = [("realm", credentials.realm), *protocol, ("oauth_signature", signature)]
    return "OAuth " + ", ".join(f'{name}="{percent_encode(value)}"' for name, value in fields)
