"""The email outbox: delivery over real SMTP (aiosmtpd), transactions, retries, concurrency."""

from __future__ import annotations

import asyncio
import logging
from contextvars import ContextVar
from datetime import timedelta
from email.utils import parsedate_to_datetime

import pytest
from tortoise.transactions import in_transaction

from core.settings import Environment, Settings, get_settings
from fleet import outbox
from models.outbox import OutboxEmail

BODY = "Hello Zoë,\n\nAda invited you to join Acme on Device Cloud.\n"

# Set while the test itself delivers, so `own_deliveries` can tell its calls apart.
_test_delivery: ContextVar[bool] = ContextVar("test_delivery", default=False)


async def deliver(settings: Settings) -> int:
    """`outbox.deliver_due`, as the test (not the live app's background sender)."""
    token = _test_delivery.set(True)
    try:
        return await outbox.deliver_due(settings)
    finally:
        _test_delivery.reset(token)


@pytest.fixture
def own_deliveries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the live app's background sender (running in this process when another test
    started the live server) off this test's emails, so the test alone decides when they are
    delivered and with which settings."""
    due = outbox._due

    async def due_for_the_test_only(now):
        return await due(now) if _test_delivery.get() else []

    monkeypatch.setattr(outbox, "_due", due_for_the_test_only)


async def test_an_enqueued_email_arrives_with_exact_headers_and_body(smtp_server, own_deliveries):
    settings = get_settings()
    email = await outbox.enqueue_email("zoe@example.com", "Join Acme on Device Cloud — now", BODY)

    assert await deliver(settings) == 1

    [received] = await smtp_server.wait_for(1)
    assert (received.mail_from, received.rcpt_tos) == ("no-reply@localhost", ["zoe@example.com"])
    message = received.message
    assert message["From"] == "Device Cloud <no-reply@localhost>" == settings.email_from
    assert message["To"] == "zoe@example.com"
    assert message["Subject"] == "Join Acme on Device Cloud — now"
    assert message.get_content_type() == "text/plain"
    assert message.get_content() == BODY
    assert parsedate_to_datetime(message["Date"]) == email.created_at.replace(microsecond=0)
    row = await OutboxEmail.get(id=email.id)
    assert (row.attempts, row.last_error, row.sent_at is not None) == (1, "", True)


async def test_an_email_enqueued_in_a_rolled_back_transaction_is_never_sent(
    smtp_server, own_deliveries
):
    with pytest.raises(RuntimeError):
        async with in_transaction():
            await outbox.enqueue_email("ghost@example.com", "Never", "Rolled back.")
            raise RuntimeError("the change failed")
    await outbox.enqueue_email("real@example.com", "Committed", "Sent.")

    assert await deliver(get_settings()) == 1

    # Oldest first: had the rolled-back email existed, it would have arrived first.
    received = await smtp_server.wait_for(1)
    assert [r.message["To"] for r in received] == ["real@example.com"]
    assert await OutboxEmail.all().values_list("to", flat=True) == ["real@example.com"]


async def test_a_refused_email_is_retried_after_a_backoff_and_then_delivered(
    smtp_server, frozen_clock, own_deliveries
):
    settings = get_settings()
    smtp_server.refuse_with = "451 4.3.0 Mailbox busy, try again later"
    email = await outbox.enqueue_email("zoe@example.com", "Welcome", BODY)

    assert await deliver(settings) == 1

    row = await OutboxEmail.get(id=email.id)
    assert (row.attempts, row.sent_at) == (1, None)
    assert row.last_error == "451 4.3.0 Mailbox busy, try again later"
    assert row.next_attempt_at == frozen_clock.current + timedelta(seconds=60)
    assert smtp_server.received == []

    smtp_server.refuse_with = ""
    frozen_clock.advance(seconds=59)
    assert await deliver(settings) == 0
    frozen_clock.advance(seconds=1)
    assert await deliver(settings) == 1

    [received] = await smtp_server.wait_for(1)
    assert received.message.get_content() == BODY
    row = await OutboxEmail.get(id=email.id)
    assert (row.attempts, row.sent_at, row.last_error) == (2, frozen_clock.current, "")


async def test_an_email_is_given_up_after_8_failed_attempts(
    smtp_server, frozen_clock, own_deliveries
):
    settings = get_settings()
    smtp_server.refuse_with = "451 4.3.0 Try again later"
    email = await outbox.enqueue_email("zoe@example.com", "Welcome", BODY)

    backoffs = []
    for attempt in range(1, 9):
        assert await deliver(settings) == 1
        row = await OutboxEmail.get(id=email.id)
        assert row.attempts == attempt
        backoffs.append((row.next_attempt_at - frozen_clock.current).total_seconds())
        frozen_clock.advance(seconds=backoffs[-1])

    assert backoffs == [60, 120, 240, 480, 960, 1920, 3600, 0]
    frozen_clock.advance(days=1)
    assert await deliver(settings) == 0
    row = await OutboxEmail.get(id=email.id)
    assert (row.attempts, row.sent_at, row.last_error) == (8, None, "451 4.3.0 Try again later")
    assert smtp_server.received == []


async def test_credentials_are_not_sent_without_tls(smtp_server, own_deliveries):
    settings = get_settings().model_copy(
        update={"smtp_url": smtp_server.url.replace("smtp://", "smtp://user:secret@")}
    )
    email = await outbox.enqueue_email("zoe@example.com", "Welcome", BODY)

    assert await deliver(settings) == 1

    row = await OutboxEmail.get(id=email.id)
    assert (row.attempts, row.sent_at) == (1, None)
    assert row.last_error == (
        "SMTPNotSupportedError: the server does not offer STARTTLS; "
        "not sending credentials in clear text"
    )
    assert smtp_server.received == []


async def test_two_concurrent_deliveries_send_each_email_once(
    smtp_server, monkeypatch, own_deliveries
):
    settings = get_settings()
    addresses = [f"user{i}@example.com" for i in range(outbox.BATCH_SIZE)]
    for address in addresses:
        await outbox.enqueue_email(address, "Hello", BODY)

    # Both runs read the due emails before either claims one: the worst interleaving.
    due = outbox._due
    both_read = asyncio.Barrier(2)
    seen: list[list[str]] = []

    async def due_then_meet(now):
        emails = await due(now)
        seen.append([email.to for email in emails])
        await both_read.wait()
        return emails

    monkeypatch.setattr(outbox, "_due", due_then_meet)
    claimed = await asyncio.gather(deliver(settings), deliver(settings))

    assert seen == [addresses, addresses]
    assert sum(claimed) == len(addresses)
    received = await smtp_server.wait_for(len(addresses))
    assert sorted(r.message["To"] for r in received) == sorted(addresses)
    assert await OutboxEmail.filter(sent_at=None).count() == 0
    assert await OutboxEmail.filter(attempts=1).count() == len(addresses)


async def test_without_smtp_url_in_development_the_email_is_logged_and_marked_sent(
    caplog, own_deliveries
):
    settings = get_settings()
    assert (settings.smtp_url, settings.environment) == ("", Environment.DEVELOPMENT)
    email = await outbox.enqueue_email("zoe@example.com", "Welcome", BODY)

    with caplog.at_level(logging.INFO, logger="devicecloud.outbox"):
        assert await deliver(settings) == 1

    [record] = [r for r in caplog.records if r.name == "devicecloud.outbox"]
    assert (record.levelname, record.email_id, record.to, record.subject, record.body) == (
        "INFO",
        email.id,
        "zoe@example.com",
        "Welcome",
        BODY,
    )
    row = await OutboxEmail.get(id=email.id)
    assert (row.attempts, row.last_error, row.sent_at is not None) == (1, "", True)


async def test_in_production_without_smtp_url_the_sender_warns_at_start_up(caplog, own_deliveries):
    settings = get_settings().model_copy(
        update={"environment": Environment.PRODUCTION, "smtp_url": ""}
    )

    with caplog.at_level(logging.INFO, logger="devicecloud.outbox"):
        async with outbox.sender(settings):
            pass
        email = await outbox.enqueue_email("zoe@example.com", "Welcome", BODY)
        assert await deliver(settings) == 1

    outbox_records = [r for r in caplog.records if r.name == "devicecloud.outbox"]
    assert [(r.levelname, r.getMessage()) for r in outbox_records] == [
        ("WARNING", "SMTP_URL is not set: emails are written to the log, not delivered"),
        ("INFO", "email not delivered: SMTP_URL is not set"),
    ]
    assert (await OutboxEmail.get(id=email.id)).sent_at is not None


async def test_the_running_app_delivers_an_email_after_notify(smtp_server, live_server):
    async with in_transaction():
        await outbox.enqueue_email("zoe@example.com", "Welcome", BODY)
    outbox.notify()

    [received] = await smtp_server.wait_for(1)
    assert (received.message["To"], received.message.get_content()) == ("zoe@example.com", BODY)


async def test_a_sender_delivers_at_its_poll_without_notify(smtp_server, own_deliveries):
    settings = get_settings().model_copy(update={"outbox_poll_interval": 0.05})
    token = _test_delivery.set(True)  # the sender's task inherits it: its deliveries count
    try:
        async with outbox.sender(settings):
            await outbox.enqueue_email("zoe@example.com", "Welcome", BODY)
            [received] = await smtp_server.wait_for(1)
    finally:
        _test_delivery.reset(token)
    assert received.message["Subject"] == "Welcome"
