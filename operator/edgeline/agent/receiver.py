"""The site's own Alertmanager webhook receiver: the same payload and bearer-token rule as the
hub's (domain.alert_payload), answered on the site, so a matching alert rolls the runtime back
while the WAN is down. What it did is recorded in the agent's state and reported to the hub
when the link returns."""

from __future__ import annotations

import json
import logging
import time

from aiohttp import web

from edgeline.agent.site import Agent
from edgeline.domain.alert_payload import ValidationError, authorized, parse

log = logging.getLogger("edgeline.agent.alerts")


def make_app(agent: Agent, token: str) -> web.Application:
    async def receive(request: web.Request) -> web.Response:
        received_at = time.time()
        if not authorized(request.headers.get("Authorization", ""), token):
            log.warning("alert webhook call without the right bearer token from %s", request.remote)
            return web.Response(status=401, text="a valid bearer token is required")
        try:
            payload = parse(await request.json())
        except (ValueError, ValidationError) as exc:
            log.warning("alert webhook payload rejected: %s", str(exc).splitlines()[0])
            return web.Response(status=400, text="expected an Alertmanager webhook payload (version 4)")
        outcomes = []
        for alert in payload.alerts:
            if alert.status != "firing":
                continue
            fingerprint = alert.fingerprint or str(abs(hash(json.dumps(alert.labels, sort_keys=True))))
            outcome = await agent.on_alert(alert.labels.get("alertname", "unnamed"), alert.labels, fingerprint,
                                           alert.startsAt, received_at)
            log.info("site alert %s: %s", alert.labels.get("alertname", "unnamed"), outcome)
            outcomes.append(outcome)
        return web.Response(status=200, text="\n".join(outcomes) or "ok")

    app = web.Application(client_max_size=2 * 2**20)
    app.router.add_post("/alerts", receive)
    return app
