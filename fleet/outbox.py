"""The email outbox. An email is a row written in the transaction of the change that causes
it, so it exists exactly when the change commits; a sender running in every app process
delivers the rows after commit, retrying with backoff.

With `SMTP_URL` the sender speaks SMTP; without it the email is written to the log and marked
sent (development, and a production set-up that has no mail server yet).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import smtplib
import ssl
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from urllib.parse import unquote, urlsplit

import anyio.to_thread

from core import clock
from core.settings import Settings
from models.outbox import OutboxEmail

log = logging.getLogger("devicecloud.outbox")

BATCH_SIZE = 10
MAX_ATTEMPTS = 8
BACKOFF_BASE = timedelta(seconds=30)
MAX_BACKOFF = timedelta(hours=1)
SMTP_TIMEOUT = 30  # seconds, for connecting and for each SMTP command
# A claimed email is due again after this long, so one claimed by a process that died is still
# delivered. A batch takes far less: a timeout closes the connection and fails the rest fast.
CLAIM_LEASE = timedelta(minutes=15)

# The wake-up events of the senders running in this process (one per running app).
_wakeups: set[asyncio.Event] = set()


async def enqueue_email(to: str, subject: str, body: str) -> OutboxEmail:
    """Queue an email. Call it inside the transaction of the change that causes the email,
    and `notify()` after that transaction commits."""
    now = clock.now()
    return await OutboxEmail.create(
        to=to, subject=subject, body=body, created_at=now, next_attempt_at=now
    )


def notify() -> None:
    """Wake this process's senders now instead of at their next poll. Call after commit."""
    for wakeup in _wakeups:
        wakeup.set()


async def deliver_due(settings: Settings) -> int:
    """Deliver one batch of due emails, oldest first; return how many this call claimed.

    Safe to run in several processes at once: each email is claimed by exactly one of them.
    """
    emails = await _claim(await _due(clock.now()))
    if not emails:
        return 0
    if settings.smtp_url:
        # smtplib blocks; a worker thread keeps the event loop serving requests.
        errors = await anyio.to_thread.run_sync(
            _send, settings.smtp_url, settings.email_from, emails
        )
    else:
        for email in emails:
            log.info(
                "email not delivered: SMTP_URL is not set",
                extra={
                    "email_id": email.id,
                    "to": email.to,
                    "subject": email.subject,
                    "body": email.body,
                },
            )
        errors = [""] * len(emails)
    now = clock.now()
    for email, error in zip(emails, errors, strict=True):
        await _record(email, error, now)
    return len(emails)


@contextlib.asynccontextmanager
async def sender(settings: Settings) -> AsyncIterator[None]:
    """Run the background sender while the block runs (the app's lifespan). It delivers when
    `notify()` wakes it and every `OUTBOX_POLL_INTERVAL` seconds."""
    if not settings.smtp_url and not settings.development:
        log.warning("SMTP_URL is not set: emails are written to the log, not delivered")
    wakeup = asyncio.Event()
    task = asyncio.create_task(_run(settings, wakeup), name="outbox-sender")
    _wakeups.add(wakeup)
    try:
        yield
    finally:
        _wakeups.discard(wakeup)
        task.cancel()
        # `wait` rather than `await task`: our own cancellation must still propagate.
        await asyncio.wait([task])


async def _run(settings: Settings, wakeup: asyncio.Event) -> None:
    while True:
        # Cleared before delivering, so a notify() during a batch triggers another pass.
        wakeup.clear()
        try:
            claimed = BATCH_SIZE
            while claimed == BATCH_SIZE:
                claimed = await deliver_due(settings)
        except Exception:  # the database or the network is down: try again at the next poll
            log.exception("outbox delivery failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wakeup.wait(), settings.outbox_poll_interval)


async def _due(now: datetime) -> list[OutboxEmail]:
    return (
        await OutboxEmail.filter(sent_at=None, next_attempt_at__lte=now, attempts__lt=MAX_ATTEMPTS)
        .order_by("id")
        .limit(BATCH_SIZE)
    )


async def _claim(emails: Sequence[OutboxEmail]) -> list[OutboxEmail]:
    """Keep the emails this process wins. Each claim is a compare-and-set on the
    `next_attempt_at` we read: another process that read the same row finds it changed."""
    lease_until = clock.now() + CLAIM_LEASE
    claimed = []
    for email in emails:
        won = await OutboxEmail.filter(
            id=email.id, sent_at=None, next_attempt_at=email.next_attempt_at
        ).update(next_attempt_at=lease_until)
        if won:
            claimed.append(email)
    return claimed


async def _record(email: OutboxEmail, error: str, now: datetime) -> None:
    attempts = email.attempts + 1
    if not error:
        await OutboxEmail.filter(id=email.id).update(sent_at=now, attempts=attempts, last_error="")
        return
    if attempts >= MAX_ATTEMPTS:
        log.error(
            "email given up", extra={"email_id": email.id, "attempts": attempts, "error": error}
        )
        retry_at = now
    else:
        log.warning(
            "email not delivered, will retry",
            extra={"email_id": email.id, "attempts": attempts, "error": error},
        )
        retry_at = now + min(BACKOFF_BASE * 2**attempts, MAX_BACKOFF)
    await OutboxEmail.filter(id=email.id).update(
        attempts=attempts, last_error=error, next_attempt_at=retry_at
    )


def _send(url: str, sender_address: str, emails: Sequence[OutboxEmail]) -> list[str]:
    """Send over one SMTP session; return, per email, "" or why it was not accepted."""
    try:
        smtp = _connect(url)
    except OSError as error:  # smtplib's errors are OSErrors too
        return [_describe(error)] * len(emails)
    errors = []
    try:
        for email in emails:
            try:
                smtp.send_message(_message(email, sender_address))
            except ValueError as error:  # e.g. a line break in a header
                errors.append(f"invalid email: {error}")
            except OSError as error:
                errors.append(_describe(error))
            else:
                errors.append("")
    finally:
        with contextlib.suppress(OSError):
            smtp.quit()
        smtp.close()
    return errors


def _message(email: OutboxEmail, sender_address: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender_address
    message["To"] = email.to
    message["Subject"] = email.subject
    message["Date"] = formatdate(email.created_at.timestamp(), usegmt=True)
    # Stable across retries, so a receiver can drop the copy a dead process may have sent.
    domain = parseaddr(sender_address)[1].rpartition("@")[2] or "localhost"
    message["Message-ID"] = f"<outbox.{email.id}.{int(email.created_at.timestamp())}@{domain}>"
    message.set_content(email.body)
    return message


def _connect(url: str) -> smtplib.SMTP:
    """Open a session: implicit TLS for smtps://, STARTTLS for smtp:// when the server offers
    it, then log in if the URL has credentials."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    context = ssl.create_default_context()
    if parts.scheme == "smtps":
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(
            host, parts.port or 465, timeout=SMTP_TIMEOUT, context=context
        )
        encrypted = True
    else:
        smtp = smtplib.SMTP(host, parts.port or 587, timeout=SMTP_TIMEOUT)
        encrypted = False
    try:
        smtp.ehlo()
        if not encrypted and smtp.has_extn("starttls"):
            smtp.starttls(context=context)
            smtp.ehlo()
            encrypted = True
        if parts.username:
            if not encrypted:
                raise smtplib.SMTPNotSupportedError(
                    "the server does not offer STARTTLS; not sending credentials in clear text"
                )
            smtp.login(unquote(parts.username), unquote(parts.password or ""))
    except BaseException:
        smtp.close()
        raise
    return smtp


def _describe(error: Exception) -> str:
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        code, refusal = next(iter(error.recipients.values()))
        return f"{code} {refusal.decode(errors='replace')}"
    if isinstance(error, smtplib.SMTPResponseException):
        reply = error.smtp_error
        text = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
        return f"{error.smtp_code} {text}"
    return f"{type(error).__name__}: {error}"
