"""What the fixtures hand to tests: a movable clock, the live server, an SMTP server."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage

import httpx
import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass
class Clock:
    """A clock the test moves by hand."""

    current: datetime

    def __call__(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> None:
        self.current += timedelta(**delta)


@dataclass
class LiveServer:
    url: str

    def client(self, **kwargs) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=30, **kwargs)

    @property
    def device_url(self) -> str:
        """The device gateway's WebSocket URL."""
        return self.url.replace("http://", "ws://") + "/device/v1"


@dataclass
class ReceivedEmail:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


@dataclass
class SmtpServer:
    """A real SMTP server (aiosmtpd) on a loopback port that records the emails it accepts.
    Set `refuse_with` to an SMTP reply (e.g. "451 4.3.0 Try again later") to refuse them."""

    url: str = ""
    received: list[ReceivedEmail] = field(default_factory=list)
    refuse_with: str = ""
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.refuse_with:
            return self.refuse_with
        # SMTP carries lines ending in CRLF; read the message back as it was composed.
        raw = envelope.original_content.replace(b"\r\n", b"\n")
        message = message_from_bytes(raw, policy=policy.default)
        async with self._arrived:
            self.received.append(
                ReceivedEmail(envelope.mail_from, list(envelope.rcpt_tos), message)
            )
            self._arrived.notify_all()
        return "250 OK"

    async def wait_for(self, count: int, within: float = 10) -> list[ReceivedEmail]:
        """Every email received once there are at least `count`; fails after `within` seconds."""
        try:
            async with asyncio.timeout(within), self._arrived:
                await self._arrived.wait_for(lambda: len(self.received) >= count)
        except TimeoutError:
            pytest.fail(f"{len(self.received)} emails received within {within} s, not {count}")
        return list(self.received)
