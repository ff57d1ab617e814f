"""Keeps the tenancy admission policy (render.tenancy_policy) in place on the hub, as the
operator keeps its webhook configuration: applied by the leader at start."""

from __future__ import annotations

import logging

import kopf
from lightkube import ApiError
from lightkube.codecs import from_dict

from edgeline import FIELD_MANAGER
from edgeline.clusters.connections import hub_client
from edgeline.render.tenancy_policy import policy
from edgeline.settings import get_settings


@kopf.on.startup()
async def apply_tenancy_policy(logger: logging.Logger, **_) -> None:
    settings = get_settings()
    if not settings.tenancy_manage_policy:
        logger.info("the tenancy admission policy is not managed (EDGELINE_TENANCY_MANAGE_POLICY=false)")
        return
    try:
        for obj in policy(settings.tenancy_open_without_section):
            await hub_client().apply(from_dict(obj), field_manager=FIELD_MANAGER, force=True)
    except ApiError as exc:
        # The controllers still refuse what the policy would (domain.tenancy); admission just says it later.
        logger.error("could not apply the tenancy admission policy: %s", exc.status.message)
