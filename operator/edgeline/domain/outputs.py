"""Step outputs: what a step reports (its termination message, a JSON object) and how
later steps use it ($(steps.NAME.outputs.KEY) in args and env values)."""

from __future__ import annotations

import json
import re

from edgeline.api.common import EnvVar
from edgeline.api.datapipeline import Step

REFERENCE = re.compile(r"\$\(steps\.([a-z0-9]([-a-z0-9]*[a-z0-9])?)\.outputs\.([A-Za-z0-9_.-]+)\)")


def references(text: str) -> list[tuple[str, str]]:
    """(step, key) of every $(steps.STEP.outputs.KEY) in `text`."""
    return [(m.group(1), m.group(3)) for m in REFERENCE.finditer(text)]


def substitute(text: str, outputs: dict[str, dict[str, str]]) -> tuple[str, list[str]]:
    """Replaces $(steps.NAME.outputs.KEY); returns the text and the references it could not fill."""
    missing: list[str] = []

    def one(match: re.Match) -> str:
        step, key = match.group(1), match.group(3)
        value = outputs.get(step, {}).get(key)
        if value is None:
            missing.append(f"steps.{step}.outputs.{key}")
            return match.group(0)
        return value

    return REFERENCE.sub(one, text), missing


def substituted_step(step: Step, outputs: dict[str, dict[str, str]]) -> tuple[Step, list[str]]:
    """The step with its args and env values filled in, and the references left unfilled."""
    missing: list[str] = []
    args = []
    for arg in step.args:
        text, gaps = substitute(arg, outputs)
        args.append(text)
        missing += gaps
    env = []
    for var in step.env:
        text, gaps = substitute(var.value, outputs)
        env.append(EnvVar(name=var.name, value=text))
        missing += gaps
    return step.model_copy(update={"args": args, "env": env}), missing


def parse_outputs(message: str | None) -> tuple[dict[str, str], str | None]:
    """A termination message as outputs: a JSON object; non-string values are kept as their
    JSON text. Anything else yields no outputs and a note saying why."""
    if not message or not message.strip():
        return {}, None
    try:
        data = json.loads(message)
    except ValueError:
        return {}, "the termination message is not JSON; no outputs recorded"
    if not isinstance(data, dict):
        return {}, "the termination message is not a JSON object; no outputs recorded"
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}, None
