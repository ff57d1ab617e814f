"""Building blocks shared by several kinds: label selectors, env vars, resources."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from edgeline.api.base import ApiModel

LABEL_KEY = r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$"

ShortText = Annotated[str, Field(max_length=63)]
Quantity = Annotated[str, Field(max_length=32, pattern=QUANTITY)]


class LabelSelectorRequirement(ApiModel):
    key: str = Field(description="Label key the requirement is about", max_length=317, pattern=LABEL_KEY)
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(
        description="In, NotIn, Exists or DoesNotExist")
    values: list[ShortText] = Field([], max_length=32, description="Values for In and NotIn; empty for the others")


class LabelSelector(ApiModel):
    """The Kubernetes label selector: every matchLabels pair and every expression must hold."""

    match_labels: dict[str, ShortText] = Field(
        {}, description="Labels that must all be present with these values", json_schema_extra={"maxProperties": 32})
    match_expressions: list[LabelSelectorRequirement] = Field(
        [], max_length=16, description="Set-based requirements that must all hold")


NON_EMPTY_SELECTOR = {
    "rule": "(has(self.matchLabels) && size(self.matchLabels) > 0) || "
            "(has(self.matchExpressions) && size(self.matchExpressions) > 0)",
    "message": "must not be empty: give matchLabels or matchExpressions (an empty selector would pick everything)",
}


class EnvVar(ApiModel):
    name: str = Field(description="Variable name", min_length=1, max_length=128, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    value: str = Field("", description="Value", max_length=4096)


class ResourceRequirements(ApiModel):
    requests: dict[str, Quantity] = Field(
        {}, description="Minimum resources (cpu, memory, nvidia.com/gpu ...) as Kubernetes quantities",
        json_schema_extra={"maxProperties": 8})
    limits: dict[str, Quantity] = Field(
        {}, description="Maximum resources as Kubernetes quantities", json_schema_extra={"maxProperties": 8})
