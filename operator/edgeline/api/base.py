"""Shared base of every API model: camelCase in YAML, snake_case in Python."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class ApiModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    def dump(self) -> dict[str, Any]:
        """camelCase, without unset values: what a status patch or a manifest wants."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class Resource(BaseModel):
    """A whole object as kopf hands it over; metadata and status are read loosely,
    spec strictly through the kind's model."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    # Filled in by each kind: what CRD generation needs to know about it.
    KIND: ClassVar[str]
    PLURAL: ClassVar[str]
    SINGULAR: ClassVar[str]
    SCOPE: ClassVar[str] = "Namespaced"
    SHORT_NAMES: ClassVar[list[str]] = []
    PRINTER_COLUMNS: ClassVar[list[dict]] = []
    DESCRIPTION: ClassVar[str] = ""
    SPEC_VALIDATIONS: ClassVar[list[dict]] = []

    metadata: dict = {}
