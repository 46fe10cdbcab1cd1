"""Outgoing email, written in the same transaction as the change that causes it."""

from tortoise import fields
from tortoise.models import Model


class OutboxEmail(Model):
    """One email to send. A sender delivers pending rows after commit and records the outcome."""

    id = fields.BigIntField(primary_key=True)
    to = fields.CharField(max_length=254)
    subject = fields.CharField(max_length=300)
    body = fields.TextField()
    created_at = fields.DatetimeField()
    sent_at = fields.DatetimeField(null=True)
    attempts = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField()
    last_error = fields.TextField(default="")

    class Meta:
        table = "outbox_emails"
        indexes = [("sent_at", "next_attempt_at")]
