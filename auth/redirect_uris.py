"""Redirect URIs a client may register: RFC 9700 (exact matching, no open redirectors) and
RFC 8252 (native apps: loopback http on any port, private-use schemes)."""

from __future__ import annotations

from ipaddress import ip_address
from urllib.parse import urlsplit

from auth.errors import AuthCode
from core.errors import CoreCode, InvalidInput
from core.origins import NOT_ASCII, has_non_ascii_host
from models.oauth import ClientType

MAX_REDIRECT_URIS = 10
REDIRECT_URI_MAX = 2000


def validate_redirect_uri(uri: str, client_type: ClientType, field: str = "redirectUris", *,
                          native: bool = False) -> str:
    """RFC 9700: exact, absolute URIs without fragments or wildcards; https, or http only to a
    loopback address; apps on a device (MOBILE clients, and `native` ones: public
    third-party apps) may also use a private-use scheme (RFC 8252 §7.1)."""
    problem = None
    try:
        parts = urlsplit(uri)
    except ValueError:
        parts = None
    if len(uri) > REDIRECT_URI_MAX:
        problem = f"is longer than {REDIRECT_URI_MAX} characters"
    elif any(character.isspace() or not character.isprintable() for character in uri):
        problem = "contains spaces or control characters"
    elif parts is None or not parts.scheme:
        problem = "is not an absolute URI"
    elif "*" in uri:
        problem = "contains a wildcard; redirect URIs are matched exactly"
    elif parts.fragment or uri.endswith("#"):
        problem = "has a fragment, which redirect URIs must not have"
    elif "@" in parts.netloc:
        # `https://dash.example.com@evil.example/cb` reads like dash.example.com but goes to
        # evil.example, and credentials do not belong in a URI (RFC 9700 §4.1.1, RFC 3986 §3.2.1)
        problem = "has a user name or password (userinfo), which redirect URIs must not have"
    elif parts.scheme in ("http", "https") and has_non_ascii_host(uri):
        # Matched by origin too (CORS): the host must be the A-label a browser sends
        problem = NOT_ASCII
    elif parts.scheme == "https":
        problem = None if parts.hostname else "has no host"
    elif parts.scheme == "http":
        problem = None if _is_loopback(parts.hostname) else (
            "uses plain http to a public host; use https (http is allowed only for "
            "127.0.0.1, [::1] or localhost)"
        )
    elif (native or client_type is ClientType.MOBILE) and "." in parts.scheme:
        problem = None
    else:
        problem = f"uses the scheme '{parts.scheme}'; use https"
    if problem:
        raise InvalidInput(f"The redirect URI '{uri[:200]}' {problem}.", field=field,
                           code=AuthCode.INVALID_REDIRECT_URI)
    return uri


def clean_redirect_uris(uris: list[str], client_type: ClientType, *, native: bool = False
                        ) -> list[str]:
    """A client's redirect URIs, each valid, without repeats, at most `MAX_REDIRECT_URIS`."""
    if len(uris) > MAX_REDIRECT_URIS:
        raise InvalidInput(f"At most {MAX_REDIRECT_URIS} redirect URIs.",
                           field="redirectUris", code=CoreCode.TOO_MANY)
    return list(dict.fromkeys(
        validate_redirect_uri(u.strip(), client_type, native=native) for u in uris
    ))


def is_loopback_ip(host: str | None) -> bool:
    """Whether a URI's host name (IPv6 without its brackets) is an IP literal of the loopback
    interface: any of 127.0.0.0/8, or ::1. The one definition of a loopback address, for what
    a client may register and for the redirect URIs that match on any port (RFC 8252 §7.3):
    every address of 127.0.0.0/8 reaches only this machine, as 127.0.0.1 does."""
    if host is None:
        return False
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def _is_loopback(host: str | None) -> bool:
    return host == "localhost" or is_loopback_ip(host)
