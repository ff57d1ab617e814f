"""What a failed tick says about itself (the Reconciled condition and its Event)."""

import pytest
from lightkube import ApiError

from edgeline.api.conditions import Condition
from edgeline.clusters.connections import ConnectionProblem
from edgeline.controllers.loop import failure_message


class _Response:
    status_code = 422

    def json(self):
        return {"code": 422, "message": "denied by policy"}


@pytest.mark.parametrize("exc, expected", [
    (ApiError(response=_Response()), "ApiError: 422 denied by policy"),
    (OSError("connection reset"), "OSError: connection reset"),
    (KeyError("spec"), "unexpected KeyError: 'spec' (a bug: the operator log has the traceback)"),
    (RuntimeError(), "unexpected RuntimeError: no details (a bug: the operator log has the traceback)"),
])
def test_the_message_names_the_error_class_and_what_it_says(exc, expected):
    assert failure_message(exc) == expected


def test_a_long_error_still_fits_a_condition():
    message = failure_message(OSError("x" * 10_000))
    Condition(type="Reconciled", status="False", reason="ReconcileFailed", message=message + "; next try in 60 s",
              last_transition_time="2026-11-25T10:00:00Z")
    assert message.endswith("...")


def test_connection_problems_are_expected_failures():
    assert failure_message(ConnectionProblem("KubeconfigSecretNotFound", "no secret")).startswith("ConnectionProblem")
