"""RFC 5849 signing against the RFC's own examples and a vector cross-checked with oauthlib 3.2.2."""

from __future__ import annotations

from interlink.connectors.netsuite.oauth1 import (
    TokenCredentials,
    authorization_header,
    percent_encode,
    sign,
    signature_base_string,
)


def test_base_string_matches_rfc_example() -> None:
    # RFC 5849 section 3.4.1.1: query, body and protocol parameters together.
    base = signature_base_string(
        "POST",
        "http://example.com/request?b5=%3D%253D&a3=a&c%40=&a2=r%20b",
        [
            ("oauth_consumer_key", "9djdj82h48djs9d2"),
            ("oauth_token", "kkk9d7dh3k39sjv7"),
            ("oauth_signature_method", "HMAC-SHA1"),
            ("oauth_timestamp", "137131201"),
            ("oauth_nonce", "7d8f3e4a"),
            ("c2", ""),
            ("a3", "2 q"),
        ],
    )
    assert base == (
        "POST&http%3A%2F%2Fexample.com%2Frequest&a2%3Dr%2520b%26a3%3D2%2520q%26a3%3Da%26b5%3D%253D%25253D"
        "%26c%2540%3D%26c2%3D%26oauth_consumer_key%3D9djdj82h48djs9d2%26oauth_nonce%3D7d8f3e4a"
        "%26oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D137131201%26oauth_token%3Dkkk9d7dh3k39sjv7"
    )


def test_hmac_sha1_matches_rfc_example() -> None:
    # RFC 5849 section 1.2: the photos example.
    base = signature_base_string(
        "GET",
        "http://photos.example.net/photos?file=vacation.jpg&size=original",
        [
            ("oauth_consumer_key", "dpf43f3p2l4k3l03"),
            ("oauth_token", "nnch734d00sl2jdk"),
            ("oauth_signature_method", "HMAC-SHA1"),
            ("oauth_timestamp", "137131202"),
            ("oauth_nonce", "chapoH"),
        ],
    )
    assert sign(base, "kd94hf93k423kf44", "pfkkdhi9sl3r4s00", "HMAC-SHA1") == "MdpQcU8iPSUjWoN/UDMsK2sui9I="


def test_hmac_sha256_header_matches_oauthlib() -> None:
    header = authorization_header(
        TokenCredentials("123_SB1", "ck", "cs s", "tk", "ts/&"),
        "GET",
        "https://123-sb1.suitetalk.api.netsuite.com/services/rest/record/v1/purchaseOrder"
        "?q=lastModifiedDate%20ON_OR_AFTER%20%2212%2F1%2F2026%22&limit=5",
        timestamp="1700000000",
        nonce="abc123",
    )
    assert header.startswith('OAuth realm="123_SB1", oauth_consumer_key="ck"')
    assert 'oauth_signature="032JBH6hpHZHZFluT8PAaPvIfQfnntsn92nF3c077qw%3D"' in header


def test_percent_encode_keeps_unreserved_only() -> None:
    assert percent_encode("a-._~ /=&ü") == "a-._~%20%2F%3D%26%C3%BC"
