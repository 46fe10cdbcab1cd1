"""Facts about the request being served, set by the transport and read where they are needed
(log lines, audit entries) without threading them through every call."""

from contextvars import ContextVar

request_id: ContextVar[str] = ContextVar("request_id", default="")
client_address: ContextVar[str] = ContextVar("client_address", default="")
