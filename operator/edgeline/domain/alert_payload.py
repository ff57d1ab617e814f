"""The Alertmanager webhook payload (version 4) and its bearer-token rule, shared by the hub's
alert receiver (controllers.alerts) and a pull site's agent (agent.receiver): one parser, one
wording, so that a site accepts exactly what the hub accepts."""

from __future__ import annotations

import hmac

from pydantic import BaseModel, ConfigDict, ValidationError

__all__ = ["AlertIn", "Payload", "ValidationError", "authorized", "parse"]


class AlertIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    status: str
    labels: dict[str, str]
    startsAt: str = ""
    fingerprint: str = ""


class Payload(BaseModel):
    model_config = ConfigDict(extra="ignore")
    version: str
    alerts: list[AlertIn]


def authorized(header: str, token: str) -> bool:
    """Whether the Authorization header carries the bearer token (compared in constant time)."""
    return hmac.compare_digest(header.encode(), f"Bearer {token}".encode())


def parse(data: object) -> Payload:
    """The payload, or ValidationError (answer 400: Alertmanager does not retry 4xx)."""
    return Payload.model_validate(data)
