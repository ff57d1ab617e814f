"""The e2e fixtures (real hub, edges and operator), for the agent bench that runs through the e2e slots."""

from tests.e2e.conftest import *  # noqa: F401,F403
