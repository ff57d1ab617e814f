"""The CRD's cron rule (CEL, checked by the API server) and the operator's cron parser agree:
what one accepts the other accepts. The CEL pattern is RE2, a subset Python's re reads alike."""

import re

import pytest

from edgeline.api.datapipeline import CRON, SHORTHANDS
from edgeline.domain import cron


def test_the_crd_lists_exactly_the_shorthands_the_parser_knows():
    assert {f"@{s}" for s in SHORTHANDS} == set(cron.SHORTHANDS)


@pytest.mark.parametrize("expr", [*sorted(cron.SHORTHANDS), "0 2 * * *", "*/10 * * * 1-5", "0 3 1 JAN,JUL ?"])
def test_what_the_parser_accepts_passes_the_crd_rule(expr):
    cron.parse(expr)
    assert re.match(CRON, expr)


@pytest.mark.parametrize("expr", ["@fortnightly", "@reboot", "every day", "0 2 * * * *", "0 2 * *"])
def test_what_the_crd_rule_refuses_the_parser_refuses_too(expr):
    assert not re.match(CRON, expr)
    with pytest.raises(cron.CronError):
        cron.parse(expr)
