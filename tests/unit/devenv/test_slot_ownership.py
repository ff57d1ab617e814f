"""Only the environment that claimed a network slot tears down the slot's rules and site network."""

import pytest

from edgeline.devenv.environment import owns_slot


@pytest.mark.parametrize("network_state, owns", [
    # An environment with real nodes made the hub's bridge: the slot is its own.
    ({"slot": 0, "bridges": ["edl0-hub", "edl0-edge-a"], "service_rules": True}, True),
    ({"slot": 3, "bridges": ["edl3-hub"], "service_rules": False}, True),
    # A kwok-only environment (a bench's hub alone) reuses slot 0 without a bridge: not its own.
    ({"slot": 0, "bridges": [], "service_rules": False}, False),
    ({"slot": 0}, False),
])
def test_only_the_environment_that_made_the_bridge_owns_the_slot(network_state, owns):
    assert owns_slot(network_state) is owns
