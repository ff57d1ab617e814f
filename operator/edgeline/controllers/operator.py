"""Starting the operator: kopf settings, the controllers, the metrics endpoint."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os

import kopf

from edgeline.settings import get_settings

# Importing the controllers registers their handlers with kopf.
from edgeline.controllers import registry  # noqa: F401


def configure(settings: kopf.OperatorSettings) -> None:
    ours = get_settings()
    # kopf keeps its own bookkeeping in annotations under our name, never in status.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="operator.edgeline.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="operator.edgeline.io", key="last-handled-configuration"
    )
    settings.persistence.finalizer = "edgeline.io/finalizer"
    # Only what we post on purpose (and warnings) becomes an Event.
    settings.posting.level = logging.WARNING
    settings.posting.reporting_component = "edgeline"
    settings.networking.request_timeout = 30
    settings.networking.connect_timeout = 10
    # Silently dead watch streams are noticed and reconnected.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.inactivity_timeout = 600
    # Failures retry with backoff instead of kopf's flat 60 s.
    settings.execution.max_workers = max(4, ours.validation_concurrency * 2)
    settings.batching.error_delays = [1, 2, 5, 10, 30, 60, 120]


@kopf.on.login()
def _login(settings: kopf.OperatorSettings, logger: logging.Logger, **kwargs) -> kopf.ConnectionInfo | None:
    """In a Pod: the API server where client-go and lightkube find it, at $KUBERNETES_SERVICE_HOST
    (an address). kopf's own service-account login names https://kubernetes.default.svc, which a
    cluster without cluster DNS (the local environment's real nodes) cannot resolve. Elsewhere:
    what kopf does by default (the official client's configuration, else the kubeconfig)."""
    in_pod = kopf.login_with_service_account(settings=settings, logger=logger, **kwargs)
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    if in_pod is not None and host:
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        return dataclasses.replace(in_pod, server=f"https://[{host}]:{port}" if ":" in host else
                                   f"https://{host}:{port}")
    try:
        found = kopf.login_via_client(settings=settings, logger=logger, **kwargs)
    except kopf.LoginError:
        found = None
    return found or in_pod or kopf.login_with_kubeconfig(settings=settings, logger=logger, **kwargs)


@kopf.on.startup()
async def _startup(settings: kopf.OperatorSettings, logger: logging.Logger, **_) -> None:
    configure(settings)
    from edgeline import metrics

    metrics.serve(get_settings().metrics_port)
    logger.info("edgeline operator started; metrics on :%d", get_settings().metrics_port)


def run_operator(namespaces: list[str], liveness: str | None, verbose: bool) -> int:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    # The kubernetes client's own request logging is noise at INFO.
    logging.getLogger("kubernetes").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("httpx2").setLevel(logging.WARNING)  # lightkube's per-request lines
    from edgeline.controllers import leadership

    def start(stop_flag: asyncio.Event | None, memo: kopf.Memo):
        return kopf.operator(
            clusterwide=not namespaces,
            namespaces=namespaces,
            standalone=True,
            liveness_endpoint=liveness,
            stop_flag=stop_flag,
            memo=memo,
        )

    # Every replica serves the webhook and the alert receiver; only the Lease holder runs kopf.
    return asyncio.run(leadership.run(start, liveness))
