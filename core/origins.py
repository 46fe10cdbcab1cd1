"""Web origins (RFC 6454) as browsers write them in the `Origin` header: `scheme://host[:port]`,
scheme and host in lower case, the host in ASCII (punycode), the scheme's default port left
out. Comparing origins is comparing these strings."""

from __future__ import annotations

from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> str | None:
    """The origin of an http(s) URL, or None for any other URL (a private-use scheme, no host,
    a malformed port or host)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    try:
        host = parts.hostname.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    if ":" in host:
        host = f"[{host}]"  # urlsplit strips an IPv6 address's brackets
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"
    return f"{scheme}://{host}"


def parse_origin(text: str) -> str:
    """`text` if it is an origin written as browsers send it; else `ValueError` saying what to
    write instead. Configured origins must be exact: a path, a wildcard or another spelling
    would silently never match a browser's `Origin`."""
    if "*" in text:
        raise ValueError(f"{text!r} contains a wildcard; list each origin")
    origin = origin_of(text)
    if origin is None:
        raise ValueError(f"{text!r} is not an origin like https://app.example.com")
    if origin != text:
        raise ValueError(
            f"{text!r} is not an origin as browsers send it (no path, no trailing slash, "
            f"lower case, no default port); write {origin!r}"
        )
    return origin
