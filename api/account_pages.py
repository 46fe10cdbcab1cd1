"""The account pages the emailed links open: `/account/verify` (verify the email),
`/account/reset` (ask for a reset link, then choose a new password), and `/account` (where
invitations are answered). Plain HTML forms that work without JavaScript, with the hosted
sign-in pages' look and security headers; each form carries a CSRF token bound to a cookie.
Opening a link only shows a form: a link is used up by the form's POST, never by a GET, so
mail scanners that follow links do not spend them."""

from __future__ import annotations

import hmac
import html
import secrets

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from api.authorize import mac, page
from auth import accounts
from auth.throttle import TooManyRequests
from core.errors import DomainError
from core.settings import Settings
from fleet import account_emails

CSRF_COOKIE = "dc_account_csrf"
COOKIE_PATH = "/account"
e = html.escape


def _csrf_token(settings: Settings, cookie: str) -> str:
    return mac(settings, "account-csrf", cookie)


def _form(settings: Settings, request: Request, title: str, inner: str, *,
          status: int = 200, error: str = "") -> HTMLResponse:
    """A page holding one form that posts back here, with its CSRF token (and cookie)."""
    cookie = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
    shown = f'<p class="error" role="alert">{e(error)}</p>' if error else ""
    body = (
        f"<h1>{e(title)}</h1>{shown}<form method=\"post\">"
        f'<input type="hidden" name="csrf_token" value="{e(_csrf_token(settings, cookie))}">'
        f"{inner}</form>"
    )
    response = page(settings, title, body, status=status, forms=True)
    if CSRF_COOKIE not in request.cookies:
        response.set_cookie(CSRF_COOKIE, cookie, path=COOKIE_PATH, httponly=True,
                            secure=not settings.development, samesite="strict")
    return response


def _message(settings: Settings, title: str, message: str, status: int = 200) -> HTMLResponse:
    return page(settings, title, f"<h1>{e(title)}</h1><p>{e(message)}</p>", status=status)


async def _posted(request: Request, settings: Settings) -> dict[str, str] | None:
    """The form's fields, or None when its CSRF token does not match the cookie."""
    form = await request.form()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    cookie = request.cookies.get(CSRF_COOKIE, "")
    sent = fields.get("csrf_token", "")
    if not cookie or not hmac.compare_digest(_csrf_token(settings, cookie).encode(),
                                             sent.encode()):
        return None
    return fields


def _forbidden(settings: Settings) -> HTMLResponse:
    return _message(settings, "This form has expired",
                    "The form was not sent from this page, or it has expired. Open the link "
                    "again and retry.", 403)


def _client(request: Request) -> str:
    return request.client.host if request.client else ""


def _token_field(token: str) -> str:
    return f'<input type="hidden" name="token" value="{e(token)}">'


async def account(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    name = e(settings.platform_name)
    body = (
        "<h1>Your account</h1>"
        f"<p>Sign in to {name} with your email and password (the dashboard, or "
        f"<code>POST {e(settings.issuer)}/oauth/token</code>) to see and answer the "
        "invitations sent to your address: <code>me { invitations }</code>, then "
        "<code>acceptInvitation</code> or <code>declineInvitation</code>.</p>"
        "<p>Joining a team needs your email verified: open the link we emailed you at "
        "sign-up, or ask for a new one with <code>resendVerificationEmail</code>.</p>"
        f'<p><a href="{e(account_emails.RESET_PATH)}">Forgot your password?</a></p>'
    )
    return page(settings, "Your account", body)


async def verify(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    if request.method == "GET":
        token = request.query_params.get("token", "")
        if not token:
            return _message(settings, "This link is not complete",
                            "Open the whole link from the email we sent you.", 400)
        return _form(settings, request, "Verify your email",
                     f'{_token_field(token)}<button type="submit">Verify my email</button>')
    fields = await _posted(request, settings)
    if fields is None:
        return _forbidden(settings)
    try:
        user = await accounts.verify_email(fields.get("token", ""))
    except DomainError as error:
        return _message(settings, "This link does not work", error.message, 400)
    return _message(settings, "Email verified",
                    f"{user.email} is verified: you can now join teams and accept the "
                    "invitations sent to it.")


_NEW_PASSWORD = (
    '<label>New password (at least 8 characters)'  # noqa: S105 - a form, not a password
    '<input type="password" name="password" autocomplete="new-password" required></label>'
    '<button type="submit">Set the new password</button>'
)
_ASK_FOR_LINK = (
    '<label>Email<input type="email" name="email" autocomplete="email" required></label>'
    '<button type="submit">Email me a reset link</button>'
)


async def reset(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    if request.method == "GET":
        token = request.query_params.get("token", "")
        if token:
            return _form(settings, request, "Choose a new password",
                         _token_field(token) + _NEW_PASSWORD)
        return _form(settings, request, "Reset your password", _ASK_FOR_LINK)
    fields = await _posted(request, settings)
    if fields is None:
        return _forbidden(settings)
    token = fields.get("token", "")
    if not token:
        try:
            await account_emails.request_password_reset(fields.get("email", ""),
                                                        _client(request))
        except TooManyRequests as error:
            refused = _form(settings, request, "Reset your password", _ASK_FOR_LINK,
                            status=429, error=error.message)
            refused.headers["Retry-After"] = str(error.retry_after)
            return refused
        except DomainError as error:
            return _form(settings, request, "Reset your password", _ASK_FOR_LINK,
                         status=400, error=error.message)
        return _message(settings, "Check your email",
                        "If an account uses this address, we emailed it a link to choose a "
                        "new password. The link works once, for an hour.")
    try:
        await accounts.reset_password(token, fields.get("password", ""))
    except DomainError as error:
        return _form(settings, request, "Choose a new password",
                     _token_field(token) + _NEW_PASSWORD, status=400, error=error.message)
    return _message(settings, "Password changed",
                    "Your new password is set, and every session of your account is signed "
                    "out: sign in again with the new password.")


routes = [
    Route(account_emails.ACCOUNT_PATH, account, methods=["GET"]),
    Route(account_emails.VERIFY_PATH, verify, methods=["GET", "POST"]),
    Route(account_emails.RESET_PATH, reset, methods=["GET", "POST"]),
]
