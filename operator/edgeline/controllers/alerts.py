"""The Alertmanager webhook receiver (docs/rollback.md).

Alertmanager POSTs its webhook payload (version 4) with a bearer token. Each firing alert
that names an EdgeDeployment through its labels (edgeline_deployment, namespace) is written
onto that object as an annotation under alerts.operator.edgeline.io/, which wakes the
deployment's loop; the loop decides (domain.rollback) and rolls back through the same path
as rollback-to. Writing the alert onto the object first makes a receipt survive an operator
restart. A bad payload gets a 4xx and a log line, never a crash.

Alerts labelled edgeline_pipeline (and namespace) reach that DataPipeline the same way; its
loop starts a run when the alertname is in spec.triggers.alerts (docs/pipelines.md).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time

import kopf
from aiohttp import web
from lightkube import ApiError
from lightkube.types import PatchType

from edgeline import metrics, webserver
from edgeline.clusters.connections import hub_client
from edgeline.clusters.resources import RESOURCES, create_secret_once, read_secret
from edgeline.controllers import certificates, fast_revert, loop
from edgeline.domain.alert_payload import AlertIn, Payload, ValidationError, authorized, parse
from edgeline.domain.rollback import target_of
from edgeline.settings import get_settings

log = logging.getLogger(__name__)
ANNOTATION_PREFIX = "alerts.operator.edgeline.io/"
LABEL_PIPELINE = "edgeline_pipeline"
TOKEN_SECRET = "edgeline-alerts"
TLS_SECRET = "edgeline-alerts-tls"


# The payload and the token rule are shared with the pull sites' agent (domain.alert_payload).
_Alert = AlertIn
_Payload = Payload


def pipeline_of(labels: dict[str, str]) -> tuple[str, str] | None:
    """(namespace, DataPipeline) an alert is about, from its labels."""
    pipeline, namespace = labels.get(LABEL_PIPELINE), labels.get("namespace")
    return (namespace, pipeline) if pipeline and namespace else None


def alert_annotations(payload: _Payload, received_at: float, target_of=target_of
                      ) -> dict[tuple[str, str], dict[str, str]]:
    """Per (namespace, EdgeDeployment) -- or DataPipeline, with target_of=pipeline_of --
    the annotations that carry its firing alerts."""
    out: dict[tuple[str, str], dict[str, str]] = {}
    for alert in payload.alerts:
        target = target_of(alert.labels)
        if alert.status != "firing" or target is None:
            continue
        fingerprint = alert.fingerprint or str(abs(hash(json.dumps(alert.labels, sort_keys=True))))
        out.setdefault(target, {})[ANNOTATION_PREFIX + fingerprint[:40]] = json.dumps({
            "name": alert.labels.get("alertname", "unnamed"), "labels": alert.labels, "fingerprint": fingerprint,
            "startsAt": alert.startsAt, "receivedAt": received_at})
    return out


def _revert_at_once(namespace: str, name: str, annotations: dict[str, str], written: dict | None = None) -> None:
    """`written`: the object as the annotation patch left it (the API server's answer), which
    spares the fast path a read of its own."""
    from edgeline.controllers.alert_receipts import receipts     # it imports this module
    fast_revert.trigger(namespace, name, [(r.key, r.alert) for r in receipts({"annotations": annotations})],
                        written)


def make_app(token: str) -> web.Application:
    async def receive(request: web.Request) -> web.Response:
        received_at = time.time()
        offered = request.headers.get("Authorization", "")
        if not authorized(offered, token):
            log.warning("alert webhook call without the right bearer token from %s", request.remote)
            metrics.ALERTS_RECEIVED.labels(result="unauthorized").inc()
            return web.Response(status=401, text="a valid bearer token is required")
        try:
            payload = parse(await request.json())
        except (ValueError, ValidationError) as exc:
            log.warning("alert webhook payload rejected: %s", str(exc).splitlines()[0])
            metrics.ALERTS_RECEIVED.labels(result="invalid").inc()
            return web.Response(status=400, text="expected an Alertmanager webhook payload (version 4)")
        routed = {("edgedeployments", ns, n): a for (ns, n), a in alert_annotations(payload, received_at).items()}
        routed.update({("datapipelines", ns, n): a for (ns, n), a in
                       alert_annotations(payload, received_at, pipeline_of).items()})
        unrouted = sum(1 for a in payload.alerts if a.status == "firing" and target_of(a.labels) is None
                       and pipeline_of(a.labels) is None)
        metrics.ALERTS_RECEIVED.labels(result="unrouted").inc(unrouted)
        failed = []
        for (plural, namespace, name), annotations in routed.items():
            try:
                written = await hub_client().patch(RESOURCES[plural], name,
                                                   {"metadata": {"annotations": annotations}}, namespace=namespace,
                                                   patch_type=PatchType.MERGE)
                metrics.ALERTS_RECEIVED.labels(result="routed").inc(len(annotations))
                if plural == "edgedeployments":
                    # The revert is written now, not on the deployment's next tick (fast_revert).
                    _revert_at_once(namespace, name, annotations, written.to_dict())
                # The watch would wake the loop too, a little later.
                loop.wake(plural, namespace, name)
            except ApiError as exc:
                log.warning("alert for %s %s/%s not delivered: %s", plural, namespace, name, exc.status.message)
                failed.append(f"{namespace}/{name}: {exc.status.message}")
        log.info("alerts received: %d routed to %d EdgeDeployment(s) or DataPipeline(s), %d without "
                 "edgeline_deployment/edgeline_pipeline and namespace",
                 sum(len(a) for a in routed.values()), len(routed), unrouted)
        if failed and len(failed) == len(routed):
            # Alertmanager retries on 5xx: a deployment that does not exist will not appear by retrying,
            # but a hub API error may pass.
            return web.Response(status=503 if any("not found" not in f for f in failed) else 404,
                                text="; ".join(failed))
        return web.Response(status=200, text="ok")

    app = web.Application(client_max_size=2 * 2**20)
    app.router.add_post("/alerts", receive)
    return app


async def _token() -> str:
    settings = get_settings()
    if settings.alerts_token:
        return settings.alerts_token
    existing = await read_secret(TOKEN_SECRET)
    if existing and existing.get("token"):
        return existing["token"].decode()
    created = await create_secret_once(TOKEN_SECRET, {"token": secrets.token_urlsafe(32).encode()})
    return created["token"].decode()


@kopf.on.startup()
async def start_receiver(memo: kopf.Memo, logger: logging.Logger, **_) -> None:
    settings = get_settings()
    if memo.get("alerts_runner") is not None:
        return      # already serving: controllers.leadership starts it before kopf, in every replica
    if not settings.alerts_port:
        logger.info("the alert receiver is disabled (EDGELINE_ALERTS_PORT=0)")
        return
    serving = None
    if settings.alerts_tls:
        names = tuple(settings.alerts_dns_names())
        serving = await certificates.serving_context(TLS_SECRET, names)
        memo.alerts_tls = asyncio.ensure_future(certificates.keep_fresh(TLS_SECRET, names, serving))
    memo.alerts_runner = await webserver.start(make_app(await _token()), settings.alerts_listen,
                                               settings.alerts_port, ssl_context=serving.context if serving else None)
    logger.info("alert receiver on %s://%s:%d/alerts", "https" if serving else "http", settings.alerts_listen,
                settings.alerts_port)


@kopf.on.cleanup()
async def stop_receiver(memo: kopf.Memo, **_) -> None:
    if memo.get("alerts_tls") is not None:
        memo.alerts_tls.cancel()
    await webserver.stop(memo.get("alerts_runner"))
