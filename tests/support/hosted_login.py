"""The hosted sign-in pages as a browser drives them, for the end-to-end tests of the code flow:
cookies, forms parsed from the pages and posted back, each redirect checked before it is
followed; and the PKCE pair a client makes."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin

import httpx

from tests.support.constants import PASSWORD
from tests.support.servers import LiveServer

AUTHORIZE = "/oauth/authorize"
ISSUER = "http://127.0.0.1"  # BASE_URL in the tests
EMAIL = "ada@example.com"
SECURITY_HEADERS = {
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
}


@dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)
    buttons: list[tuple[str, str]] = field(default_factory=list)


class FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(Form(a.get("action", ""), a.get("method", "get").lower()))
        elif tag == "input" and self.forms and a.get("name"):
            self.forms[-1].fields[a["name"]] = a.get("value", "")
        elif tag == "button" and self.forms and a.get("name"):
            self.forms[-1].buttons.append((a["name"], a.get("value", "")))


def the_form(page: httpx.Response) -> Form:
    parser = FormParser()
    parser.feed(page.text)
    [form] = parser.forms
    assert form.method == "post"
    return form


class Browser:
    """Follows nothing by itself: each step is checked. Keeps cookies like a browser."""

    def __init__(self, server: LiveServer):
        self.server = server
        self.http = httpx.AsyncClient(base_url=server.url, timeout=30, trust_env=False)

    async def open(self, url: str) -> httpx.Response:
        return await self.http.get(url)

    async def submit(self, page: httpx.Response, button: str, **values: str) -> httpx.Response:
        """Fill in the page's form and press the button with this value."""
        form = the_form(page)
        [name] = [n for n, v in form.buttons if v == button]
        data = {**form.fields, **values, name: button}
        return await self.http.post(urljoin(str(page.url), form.action), data=data)

    async def follow(self, response: httpx.Response) -> httpx.Response:
        """Follow the `303 See Other` a posted form is answered with (post/redirect/get); the
        hosted pages' `302`s are redirects to the client, which the tests read, not follow."""
        assert response.status_code == 303, response.text
        return await self.http.get(urljoin(str(response.url), response.headers["location"]))


def assert_secure(response: httpx.Response) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value, name
    policy = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy
    assert policy.startswith("default-src 'none'; ")


def assert_page(response: httpx.Response, status: int, *texts: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert "location" not in response.headers
    assert_secure(response)
    for text in texts:
        assert text in response.text, text


async def sign_in(browser: Browser, page: httpx.Response, email: str = EMAIL,
                  password: str = PASSWORD) -> httpx.Response:
    """Post the login page; the browser comes back to the same request, signed in."""
    assert_page(page, 200, "Sign in with Device Cloud")
    response = await browser.submit(page, "sign_in", email=email, password=password)
    assert response.status_code == 303, response.text
    assert_secure(response)
    return await browser.follow(response)


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()
