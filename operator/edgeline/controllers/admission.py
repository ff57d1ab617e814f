"""The admission webhook for approvals, served by the operator over TLS.

Two mutating webhooks on EdgeDeployments, scoped narrowly with matchConditions so that the
rest of the API keeps working when the operator is down:
  - approvals (failurePolicy Fail): called only when a request sets edgeline.io/approve or
    touches the signed annotations; an unavailable webhook means no approvals, never
    unchecked ones.
  - authors (failurePolicy Ignore): called on spec changes; records who made the change,
    so that the four-eyes rule can refuse self-approval.
The decisions are `domain.admission`; this module is transport: TLS, AdmissionReview, and
keeping the MutatingWebhookConfiguration, the TLS Secret and the signing key in place.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import logging

import kopf
from aiohttp import web
from lightkube.codecs import from_dict

from edgeline import FIELD_MANAGER, webserver
from edgeline.clusters.connections import hub_client
from edgeline.controllers import approval_key, certificates
from edgeline.domain import admission
from edgeline.settings import get_settings

log = logging.getLogger(__name__)
CONFIG_NAME = "edgeline-approvals"
TLS_SECRET = "edgeline-webhook-tls"


# --- admission endpoints --------------------------------------------------------------------

def _response(review: dict, verdict: admission.Verdict) -> web.Response:
    response = {"uid": review["request"]["uid"], "allowed": verdict.allowed}
    if not verdict.allowed:
        response["status"] = {"code": 403, "reason": "Forbidden", "message": verdict.message}
    if verdict.patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(json.dumps(verdict.patch).encode()).decode()
    if verdict.warnings:
        response["warnings"] = verdict.warnings
    return web.json_response({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response})


async def _review(request: web.Request) -> dict | web.Response:
    try:
        review = await request.json()
        review["request"]["uid"]
        return review
    except (ValueError, KeyError, TypeError):
        log.warning("admission request that is not an AdmissionReview from %s", request.remote)
        return web.Response(status=400, text="expected an admission.k8s.io/v1 AdmissionReview")


async def approvals_endpoint(request: web.Request) -> web.Response:
    review = await _review(request)
    if isinstance(review, web.Response):
        return review
    req = review["request"]
    user = req.get("userInfo") or {}
    verdict = admission.review_approval(req.get("operation", ""), req.get("oldObject"), req.get("object") or {},
                                        user.get("username", ""), list(user.get("groups") or []),
                                        approval_key.required(), dt.datetime.now(dt.timezone.utc))
    log.info("approval review of %s/%s by %s: %s %s", req.get("namespace"), req.get("name"),
             user.get("username"), "allowed" if verdict.allowed else "denied", verdict.message or "; ".join(
                 verdict.warnings))
    return _response(review, verdict)


async def authors_endpoint(request: web.Request) -> web.Response:
    review = await _review(request)
    if isinstance(review, web.Response):
        return review
    req = review["request"]
    user = req.get("userInfo") or {}
    verdict = admission.review_author(req.get("operation", ""), req.get("oldObject"), req.get("object") or {},
                                      user.get("username", ""), approval_key.required(),
                                      dt.datetime.now(dt.timezone.utc))
    return _response(review, verdict)


def make_app() -> web.Application:
    app = web.Application(client_max_size=4 * 2**20)
    app.router.add_post("/approvals", approvals_endpoint)
    app.router.add_post("/authors", authors_endpoint)
    app.router.add_get("/healthz", lambda _: web.Response(text="ok"))
    return app


# --- secrets and configuration ----------------------------------------------------------------

def _changed(key: str) -> str:
    def value(obj: str) -> str:
        return (f"(has({obj}.metadata.annotations) && '{key}' in {obj}.metadata.annotations ? "
                f"{obj}.metadata.annotations['{key}'] : '')")
    return f"(oldObject == null ? {value('object')} != '' : {value('object')} != {value('oldObject')})"


def webhook_configuration(ca_pem: bytes) -> dict:
    settings = get_settings()
    if settings.webhook_url:
        def client(path: str) -> dict:
            return {"url": settings.webhook_url.rstrip("/") + path, "caBundle": base64.b64encode(ca_pem).decode()}
    else:
        def client(path: str) -> dict:
            return {"service": {"namespace": settings.namespace, "name": settings.webhook_service,
                                "port": settings.webhook_port, "path": path},
                    "caBundle": base64.b64encode(ca_pem).decode()}
    rules = [{"apiGroups": ["edgeline.io"], "apiVersions": ["v1alpha1"], "operations": ["CREATE", "UPDATE"],
              "resources": ["edgedeployments"], "scope": "Namespaced"}]
    approve_set = (f"(has(object.metadata.annotations) && '{admission.APPROVE}' in object.metadata.annotations)")
    return {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": CONFIG_NAME, "labels": {"app.kubernetes.io/part-of": "edgeline"}},
        "webhooks": [
            {"name": "approvals.edgeline.io", "clientConfig": client("/approvals"), "rules": rules,
             "failurePolicy": "Fail", "sideEffects": "None", "admissionReviewVersions": ["v1"],
             "timeoutSeconds": 10, "reinvocationPolicy": "Never",
             "matchConditions": [{"name": "approval-annotations-touched", "expression": " || ".join(
                 [approve_set] + [_changed(k) for k in admission.PROTECTED])}]},
            {"name": "authors.edgeline.io", "clientConfig": client("/authors"), "rules": rules,
             "failurePolicy": "Ignore", "sideEffects": "None", "admissionReviewVersions": ["v1"],
             "timeoutSeconds": 5, "reinvocationPolicy": "Never",
             "matchConditions": [{"name": "spec-changed",
                                  "expression": "oldObject == null || object.spec != oldObject.spec"}]},
        ],
    }


@kopf.on.startup()
async def start_webhook(memo: kopf.Memo, logger: logging.Logger, **_) -> None:
    settings = get_settings()
    if memo.get("webhook_runner") is not None:
        return      # already serving: controllers.leadership starts it before kopf, in every replica
    if not settings.webhook_port:
        logger.warning("the approval webhook is disabled (EDGELINE_WEBHOOK_PORT=0): approvals cannot be given")
        return
    await approval_key.load()
    names = tuple(settings.webhook_dns_names())
    # The certificate is renewed before it expires and reloaded while serving (controllers.certificates).
    serving = await certificates.serving_context(TLS_SECRET, names)
    memo.webhook_runner = await webserver.start(make_app(), settings.webhook_listen, settings.webhook_port,
                                                ssl_context=serving.context)

    async def configure(ca_pem: bytes) -> None:
        if settings.webhook_manage_configuration:
            await hub_client().apply(from_dict(webhook_configuration(ca_pem)), field_manager=FIELD_MANAGER,
                                     force=True)

    await configure(serving.data["ca.crt"])
    memo.webhook_tls = asyncio.ensure_future(certificates.keep_fresh(TLS_SECRET, names, serving, configure))
    logger.info("approval webhook serving on %s:%d", settings.webhook_listen, settings.webhook_port)


@kopf.on.cleanup()
async def stop_webhook(memo: kopf.Memo, **_) -> None:
    if memo.get("webhook_tls") is not None:
        memo.webhook_tls.cancel()
    await webserver.stop(memo.get("webhook_runner"))
