"""The authorization endpoint (`GET|POST /oauth/authorize`): the hosted login and consent pages
of Login with Device Cloud.

The request's parameters always travel in the query string; the login and consent forms post
back to the same URL with only their own fields, so every step validates the request again.
An untrusted client or redirect URI gets an error page, never a redirect. Forms carry a CSRF
token bound to a cookie (and, for consent, to the browser session); the browser session is a
signed cookie holding the user's ID and when it was issued: revoking all of the user's sessions
voids the cookies issued until then. Every answer, 413 and 500 included, forbids framing,
caching and referrers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar
from urllib.parse import urlsplit

from authlib.oauth2 import OAuth2Error
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.middleware import BodyTooLarge
from auth import code_flow, scopes, throttle
from auth.code_flow import AuthorizeRequest, PendingAuthorization, SignedIn
from core import clock, text
from core.errors import InvalidInput
from core.settings import Settings
from fleet import account_emails
from models.accounts import User

SESSION_COOKIE = "dc_session"
CSRF_COOKIE = "dc_csrf"
COOKIE_PATH = "/oauth/authorize"
# In production the cookies are `__Host-` cookies: Secure, Path=/ and no Domain, so neither a
# sibling subdomain nor plain http can set or shadow them. Development serves plain http, where
# browsers refuse that prefix: there they keep their names and this endpoint's path.
HOST_PREFIX = "__Host-"
SESSION_LIFETIME = 12 * 3600  # seconds a sign-in at the hosted login page lasts
CLIENT_ADDRESS_HEADER = "x-devicecloud-client-address"
# The pages whose every answer, errors included, carries `security_headers`.
HOSTED_PAGES = frozenset({COOKIE_PATH, account_emails.ACCOUNT_PATH, account_emails.VERIFY_PATH,
                          account_emails.RESET_PATH})

_STYLE = (
    "body{font-family:system-ui,sans-serif;background:#f4f5f7;color:#1d2330;margin:0}"
    "main{max-width:26rem;margin:4rem auto;background:#fff;padding:2rem;border-radius:.5rem;"
    "box-shadow:0 1px 3px rgba(0,0,0,.15)}"
    ".brand{font-weight:700;color:#3452c7;margin:0 0 1rem}"
    "h1{font-size:1.3rem;margin:0 0 1rem}"
    "label{display:block;margin:.75rem 0}"
    "input{display:block;width:100%;box-sizing:border-box;padding:.5rem;margin-top:.25rem}"
    "button{padding:.5rem 1rem;margin:1rem .5rem 0 0;font-size:1rem}"
    ".error{color:#b3261e}"
    ".quiet{color:#5b6275;font-size:.9rem}"
)
_STYLE_HASH = base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()
_HOST = re.compile(r"[A-Za-z0-9.-]+")
_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_R = TypeVar("_R", bound=Response)


@dataclass(frozen=True)
class BrowserSession:
    user: User
    nonce: str  # binds the consent form's CSRF token to this sign-in
    issued_at: datetime  # when the user signed in: OpenID Connect's `auth_time`

    @property
    def signed_in(self) -> SignedIn:
        return SignedIn(self.user, self.issued_at)


def mac(settings: Settings, purpose: str, message: str) -> str:
    """HMAC-SHA256 under a key derived from SECRET_KEY for one purpose, URL-safe base64."""
    key = hmac.new(settings.secret_key.encode(), purpose.encode(), hashlib.sha256).digest()
    digest = hmac.new(key, message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _session_cookie(settings: Settings, session: BrowserSession) -> str:
    """`<user id>.<issued at, Unix microseconds>.<nonce>.<signature>`. (Cookies of the former
    `<user id>.<expiry, Unix seconds>...` format read as issued in 1970: expired.)"""
    issued = (session.issued_at - _UNIX_EPOCH) // _MICROSECOND
    message = f"{session.user.id}.{issued}.{session.nonce}"
    return f"{message}.{mac(settings, 'browser-session', message)}"


async def _browser_session(request: Request, settings: Settings) -> BrowserSession | None:
    """The signed-in user of a valid, unexpired session cookie whose account still exists
    and was issued after the user last revoked all sessions (at the same instant: revoked)."""
    message, _, signature = request.cookies.get(
        cookie_name(settings, SESSION_COOKIE), ""
    ).rpartition(".")
    if not _same(signature, mac(settings, "browser-session", message)):
        return None
    user_id, issued, nonce = message.split(".")
    issued_at = _UNIX_EPOCH + int(issued) * _MICROSECOND
    if clock.now() - issued_at >= timedelta(seconds=SESSION_LIFETIME):
        return None
    user = await User.get_or_none(id=int(user_id))
    if user is None:
        return None
    if user.sessions_valid_after is not None and issued_at <= user.sessions_valid_after:
        return None
    return BrowserSession(user, nonce, issued_at)


def _csrf_token(settings: Settings, request: Request, csrf_cookie: str,
                session: BrowserSession | None) -> str:
    """The token a form must send back: the login form's is bound to the CSRF cookie, the
    consent form's to that cookie, the session and this very authorization request (its
    query string, which the form posts back to)."""
    if session is None:
        purpose = "sign-in"
    else:
        request_digest = hashlib.sha256(request.url.query.encode()).hexdigest()
        purpose = f"consent:{session.nonce}:{request_digest}"
    return mac(settings, "csrf", f"{purpose}:{csrf_cookie}")


def _csrf_ok(settings: Settings, request: Request, form_token: str,
             session: BrowserSession | None) -> bool:
    cookie = request.cookies.get(cookie_name(settings, CSRF_COOKIE), "")
    expected = _csrf_token(settings, request, cookie, session)
    return bool(cookie) and _same(expected, form_token)


def _same(a: str, b: str) -> bool:
    """Constant-time comparison of text that may come from the client (any characters)."""
    return hmac.compare_digest(a.encode(), b.encode())


def _form_action(pending: PendingAuthorization | None, forms: bool) -> str:
    """CSP `form-action`: our own forms, and the redirect they may end in (browsers check
    the redirects that follow a form submission too)."""
    if pending is None:
        return "'self'" if forms else "'none'"
    target = urlsplit(pending.redirect_uri)
    host = target.hostname or ""
    if _HOST.fullmatch(host):
        port = f":{target.port}" if target.port else ""
        return f"'self' {target.scheme}://{host}{port}"
    return f"'self' {target.scheme}:"


def security_headers(pending: PendingAuthorization | None, *, forms: bool = False
                     ) -> dict[str, str]:
    """The headers of every hosted page (the account pages' too): no framing, caching,
    referrers or scripts; forms post only to us (`forms`, or `pending`'s redirect)."""
    return {
        "X-Frame-Options": "DENY",
        "Content-Security-Policy": (
            f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; "
            f"form-action {_form_action(pending, forms)}; frame-ancestors 'none'; base-uri 'none'"
        ),
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
        "Pragma": "no-cache",
    }


def _secure(response: _R, pending: PendingAuthorization | None) -> _R:
    response.headers.update(security_headers(pending))
    return response


def cookie_name(settings: Settings, name: str) -> str:
    return name if settings.development else HOST_PREFIX + name


def _cookie_path(settings: Settings) -> str:
    return COOKIE_PATH if settings.development else "/"


def _set_cookie(response: Response, settings: Settings, name: str, value: str,
                max_age: int | None = None) -> None:
    response.set_cookie(
        cookie_name(settings, name), value, max_age=max_age, path=_cookie_path(settings),
        secure=not settings.development, httponly=True, samesite="lax",
    )


def _redirect(location: str, pending: PendingAuthorization | None) -> Response:
    return _secure(Response(status_code=302, headers={"Location": location}), pending)


def page(settings: Settings, title: str, body: str, *, status: int = 200,
         pending: PendingAuthorization | None = None, forms: bool = False) -> HTMLResponse:
    """A hosted page in the sign-in pages' style, with their security headers."""
    e = html.escape
    document = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(title)} · {e(settings.platform_name)}</title>"
        f"<style>{_STYLE}</style></head><body><main>"
        f'<p class="brand">{e(settings.platform_name)}</p>{body}</main></body></html>'
    )
    response = HTMLResponse(document, status_code=status)
    response.headers.update(security_headers(pending, forms=forms))
    return response


def _error_page(settings: Settings, status: int, title: str, message: str) -> HTMLResponse:
    body = f"<h1>{html.escape(title)}</h1><p>{html.escape(message)}</p>"
    return page(settings, title, body, status=status)


def _app_name(pending: PendingAuthorization) -> str:
    if pending.product is not None:
        return f"{pending.client.name} ({pending.product.name})"
    return pending.client.name


def _login_page(settings: Settings, request: Request, pending: PendingAuthorization,
                csrf_cookie: str, *, email: str = "", error: str = "",
                status: int = 200) -> HTMLResponse:
    e = html.escape
    problem = f'<p class="error" role="alert">{e(error)}</p>' if error else ""
    body = (
        f"<h1>Sign in with {e(settings.platform_name)}</h1>"
        f"<p>to continue to <strong>{e(_app_name(pending))}</strong></p>{problem}"
        f'<form method="post" action="{e(_self_url(request))}">'
        f'<input type="hidden" name="csrf_token" '
        f'value="{e(_csrf_token(settings, request, csrf_cookie, None))}">'
        f'<label>Email<input type="email" name="email" value="{e(email)}" '
        'autocomplete="username" required autofocus></label>'
        '<label>Password<input type="password" name="password" '
        'autocomplete="current-password" required></label>'
        '<button type="submit" name="action" value="sign_in">Sign in</button></form>'
    )
    return page(settings, "Sign in", body, status=status, pending=pending)


def _consent_page(settings: Settings, request: Request, pending: PendingAuthorization,
                  csrf_cookie: str, session: BrowserSession) -> HTMLResponse:
    e = html.escape
    brand = e(settings.platform_name)
    if pending.product is not None:
        product = e(pending.product.name)
        items = [
            f"Sign you in to {product} as a customer with your email address "
            f"({e(session.user.email)})",
            f"Reach the {product} devices you claim",
        ]
    else:
        items = [e(scopes.DESCRIPTIONS[s]) for s in pending.requested]
        if not items and not pending.identity:
            items = [f"Know your email address ({e(session.user.email)})"]
    items = _identity_items(settings, pending, session) + items
    destination = urlsplit(pending.redirect_uri).netloc or pending.redirect_uri
    unverified = ""
    if pending.client.owner_id is not None:
        # Anyone can register an app and name it anything: say that the name is the app's own
        # claim, and where allowing really leads.
        unverified = (
            f'<p class="error"><strong>Unverified app.</strong> {brand} has not checked who '
            f"made this app; its name is its own claim. It is hosted at "
            f"<strong>{e(destination)}</strong>.</p>"
        )
    body = (
        f"<h1><strong>{e(_app_name(pending))}</strong> wants to use your {brand} account"
        f"</h1>{unverified}<p>It asks to:</p><ul>"
        + "".join(f"<li>{item}</li>" for item in items)
        + f'</ul><p class="quiet">Signed in as {e(session.user.email)}. Allowing sends you back '
        f"to {e(destination)}.</p>"
        f'<form method="post" action="{e(_self_url(request))}">'
        f'<input type="hidden" name="csrf_token" '
        f'value="{e(_csrf_token(settings, request, csrf_cookie, session))}">'
        '<button type="submit" name="action" value="allow">Allow</button>'
        '<button type="submit" name="action" value="deny">Deny</button>'
        '<button type="submit" name="action" value="switch_account">Use another account'
        "</button></form>"
    )
    return page(settings, "Allow access", body, pending=pending)


def _identity_items(settings: Settings, pending: PendingAuthorization,
                    session: BrowserSession) -> list[str]:
    """What the identity scopes share, in the consent page's words."""
    e = html.escape
    items = []
    if scopes.IdentityScope.OPENID in pending.identity:
        items.append(f"Know who you are on {e(settings.platform_name)}: an identifier for your "
                     "account that never changes")
    if scopes.IdentityScope.PROFILE in pending.identity:
        items.append("See your profile: your account has no name or picture, so nothing more "
                     "is shared")
    if scopes.IdentityScope.EMAIL in pending.identity:
        items.append(f"See your email address ({e(session.user.email)}) and whether it is "
                     "verified")
    return items


def _self_url(request: Request) -> str:
    """This endpoint with the request's own query string: where the forms post."""
    return f"{COOKIE_PATH}?{request.url.query}"


async def authorize(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    issuer = settings.issuer
    headers = request.headers.mutablecopy()
    headers[CLIENT_ADDRESS_HEADER] = request.client.host if request.client else ""
    if not text.storable(list(request.query_params.multi_items())):
        return _error_page(settings, 400, "This sign-in link is not valid", text.REFUSAL)
    try:
        pending = await code_flow.check_request(
            request.app.state.oauth_server,
            AuthorizeRequest(
                request.method, f"{issuer}{request.url.path}?{request.url.query}", headers,
                list(request.query_params.multi_items()),
            ),
        )
    except OAuth2Error as error:
        location = code_flow.refusal_location(error, issuer)
        if location is not None:
            return _redirect(location, None)
        return _error_page(settings, 400, "This sign-in link is not valid",
                           f"{error.description or error.error} The app that sent you here is "
                           "misconfigured, so you were not sent back to it.")

    session = await _browser_session(request, settings)
    csrf_name = cookie_name(settings, CSRF_COOKIE)
    csrf_cookie = request.cookies.get(csrf_name) or secrets.token_urlsafe(32)
    if request.method == "POST":
        response = await _decide(request, settings, pending, csrf_cookie, session)
    elif "none" in pending.prompt:
        response = await _without_pages(settings, pending, session)
    elif pending.needs_sign_in(session.issued_at if session else None):
        response = _login_page(settings, request, pending, csrf_cookie)
    else:
        assert session is not None  # `needs_sign_in` without one
        response = await _after_sign_in(request, settings, pending, csrf_cookie, session)
    if csrf_name not in request.cookies:
        _set_cookie(response, settings, CSRF_COOKIE, csrf_cookie)
    return response


async def _without_pages(settings: Settings, pending: PendingAuthorization,
                         session: BrowserSession | None) -> Response:
    """`prompt=none`: a code if the user is signed in (recently enough for `max_age`) and
    already allowed these scopes (never, for a public client redirecting to loopback or a
    private-use scheme: `consent_covers`), else the error back to the app, never a page."""
    issuer = settings.issuer
    if session is not None and pending.needs_sign_in(session.issued_at):
        session = None
    if session is not None and await code_flow.consent_covers(session.user, pending):
        return _redirect(await code_flow.approve(pending, session.signed_in, issuer), pending)
    location = code_flow.interaction_required(pending, signed_in=session is not None,
                                              issuer=issuer)
    return _redirect(location, pending)


async def _after_sign_in(request: Request, settings: Settings, pending: PendingAuthorization,
                         csrf_cookie: str, session: BrowserSession) -> Response:
    """Signed in: back to the app with a code if it already has the user's consent (unless
    `prompt=consent`, or the request could be anyone's: `consent_covers`), else the consent
    page."""
    if "consent" not in pending.prompt and await code_flow.consent_covers(session.user,
                                                                          pending):
        location = await code_flow.approve(pending, session.signed_in, settings.issuer)
        return _redirect(location, pending)
    return _consent_page(settings, request, pending, csrf_cookie, session)


async def _decide(request: Request, settings: Settings, pending: PendingAuthorization,
                  csrf_cookie: str, session: BrowserSession | None) -> Response:
    """A login or consent form, posted back."""
    try:
        form = await request.form()
    except BodyTooLarge:
        raise  # the body limit middleware answers 413
    except Exception:  # python-multipart rejects undecodable bodies with several types
        return _error_page(settings, 400, "Something went wrong", "The form could not be read.")
    fields = {key: value for key, value in form.items() if isinstance(value, str)}
    if not text.storable(fields):
        return _error_page(settings, 400, "Something went wrong", text.REFUSAL)
    action = fields.get("action", "")
    token = fields.get("csrf_token", "")
    if action == "sign_in":
        if not _csrf_ok(settings, request, token, None):
            return _forbidden(settings)
        return await _sign_in(request, settings, pending, csrf_cookie, fields)
    if action not in ("allow", "deny", "switch_account"):
        return _error_page(settings, 400, "Something went wrong", "Unknown action.")
    if session is None:  # signed out meanwhile (expired): nothing to decide for anyone
        return _login_page(settings, request, pending, csrf_cookie)
    if not _csrf_ok(settings, request, token, session):
        return _forbidden(settings)
    if action == "allow" and await code_flow.already_allowed(pending, session.user):
        return _forbidden(settings)
    if action == "switch_account":
        response = _login_page(settings, request, pending, csrf_cookie)
        response.delete_cookie(cookie_name(settings, SESSION_COOKIE),
                               path=_cookie_path(settings), secure=not settings.development,
                               httponly=True, samesite="lax")
        return response
    if action == "deny":
        return _redirect(code_flow.denial_location(pending, settings.issuer), pending)
    await code_flow.remember_consent(session.user, pending.client, pending.scope)
    location = await code_flow.approve(pending, session.signed_in, settings.issuer)
    return _redirect(location, pending)


async def _sign_in(request: Request, settings: Settings, pending: PendingAuthorization,
                   csrf_cookie: str, fields: dict[str, str]) -> Response:
    email = fields.get("email", "")
    address = request.client.host if request.client else ""
    try:
        user = await code_flow.sign_in(email, fields.get("password", ""), address)
    except (throttle.Throttled, InvalidInput) as error:
        refused = _login_page(settings, request, pending, csrf_cookie, email=email,
                              error=error.message, status=error.http_status)
        if isinstance(error, throttle.Throttled):
            refused.headers["Retry-After"] = str(error.retry_after)
        return refused
    session = BrowserSession(user, secrets.token_urlsafe(16), clock.now())
    if pending.prompt & {"login", "select_account"} or pending.max_age is not None:
        # The same request again would ask to sign in again (or, for `max_age=0`, find this
        # sign-in already too old): go on from here.
        response = await _after_sign_in(request, settings, pending, csrf_cookie, session)
    else:  # post/redirect/get: the same request again, now signed in
        response = _secure(
            Response(status_code=303, headers={"Location": _self_url(request)}), pending
        )
    _set_cookie(response, settings, SESSION_COOKIE, _session_cookie(settings, session),
                max_age=SESSION_LIFETIME)
    return response


def _forbidden(settings: Settings) -> HTMLResponse:
    return _error_page(
        settings, 403, "This form has expired",
        "The form was not sent from this page, or it has expired. Go back, reload the page "
        "and try again.",
    )


class SecureErrors:
    """Middleware (outside the body limit): the 413 and 500 answers of the hosted pages forbid
    framing, caching and referrers like the pages; a 500 is an error page, not plain text."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in HOSTED_PAGES:
            await self.app(scope, receive, send)
            return
        started = False

        async def secure_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                missing = [  # a page's own headers (its CSP's form-action) stay
                    (name.lower().encode(), value.encode())
                    for name, value in security_headers(None).items()
                    if name.lower().encode() not in present
                ]
                message["headers"] = [*headers, *missing]
            await send(message)

        try:
            await self.app(scope, receive, secure_send)
        except Exception:
            if not started:  # the server error middleware re-raises it after, and logs it
                settings: Settings = scope["app"].state.settings
                await _error_page(settings, 500, "Something went wrong",
                                  "Try again later.")(scope, receive, send)
            raise


routes = [Route("/oauth/authorize", authorize, methods=["GET", "POST"])]
