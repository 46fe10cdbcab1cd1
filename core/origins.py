"""Web origins (RFC 6454) as browsers write them in the `Origin` header: `scheme://host[:port]`,
scheme and host in lower case, the host in ASCII (punycode), the scheme's default port left
out. Comparing origins is comparing these strings.

A host written in Unicode has no origin here: turning it into the A-label a browser sends
takes UTS #46 processing (`faß.de` is `xn--fa-hia.de` to a browser, `fass.de` to Python's
IDNA 2003 codec), so redirect URIs and `CORS_ALLOWED_ORIGINS` must spell hosts in ASCII."""

from __future__ import annotations

from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}
NOT_ASCII = ("has a host that is not in ASCII; write it in its A-label (punycode) form, as "
             "browsers send it: xn--fa-hia.de, not faß.de")


def origin_of(url: str) -> str | None:
    """The origin of an http(s) URL, or None for any other URL (a private-use scheme, no host,
    a host not in ASCII, a malformed port)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in _DEFAULT_PORTS or not host or not host.isascii():
        return None
    if ":" in host:
        host = f"[{host}]"  # urlsplit strips an IPv6 address's brackets
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"
    return f"{scheme}://{host}"


def has_non_ascii_host(url: str) -> bool:
    """Whether `url` names its host in Unicode (see the module docstring)."""
    try:
        host = urlsplit(url.strip()).hostname
    except ValueError:
        return False
    return host is not None and not host.isascii()


def parse_origin(text: str) -> str:
    """`text` if it is an origin written as browsers send it; else `ValueError` saying what to
    write instead. Configured origins must be exact: a path, a wildcard or another spelling
    would silently never match a browser's `Origin`."""
    if "*" in text:
        raise ValueError(f"{text!r} contains a wildcard; list each origin")
    if has_non_ascii_host(text):
        raise ValueError(f"{text!r} {NOT_ASCII}")
    origin = origin_of(text)
    if origin is None:
        raise ValueError(f"{text!r} is not an origin like https://app.example.com")
    if origin != text:
        raise ValueError(
            f"{text!r} is not an origin as browsers send it (no path, no trailing slash, "
            f"lower case, no default port); write {origin!r}"
        )
    return origin
