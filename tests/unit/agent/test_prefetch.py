"""The agent's prefetch after a site revert: it keeps what the site runs and falls back on, and does
not fetch again the revision it reverted from (the WAN may be down; that fetch could only fail)."""

from __future__ import annotations

import asyncio
import hashlib
import logging

from edgeline.agent import cache
from edgeline.agent.site import Agent, AgentConfig
from edgeline.api.edgedeployment import RevisionRef
from edgeline.clusters import pull

OBJ = "ns-detector"


def _revision(name: str, uri: str, data: bytes) -> RevisionRef:
    return RevisionRef(revision=name, version=name, uri=uri, digest="sha256:" + hashlib.sha256(data).hexdigest())


def _assigned(tmp_path) -> tuple[Agent, RevisionRef, RevisionRef]:
    """An agent assigned r2 (its origin out of reach: nothing listens on loopback port 9) with r1,
    a local file, as the known-good fallback."""
    good_file = tmp_path / "v1.onnx"
    good_file.write_bytes(b"model one")
    good = _revision("r1", good_file.as_uri(), b"model one")
    bad = _revision("r2", "http://127.0.0.1:9/v2.onnx", b"model two")
    agent = Agent(AgentConfig(cluster="line-7", cache_dir=tmp_path, cache_host_dir=str(tmp_path)), hub=None, site=None)
    agent.state.assignments[OBJ] = pull.Assignment("ns", "detector", OBJ, "models", bad, good).to_json()
    return agent, good, bad


def test_after_a_site_revert_the_prefetch_leaves_the_reverted_revision_alone(tmp_path, caplog):
    agent, good, bad = _assigned(tmp_path)
    agent.state.reverted[OBJ] = {"r2": "r1"}          # the site rolled r2 back to r1 by itself
    with caplog.at_level(logging.WARNING, logger="edgeline.agent"):
        asyncio.run(agent._prefetch())
    assert cache.cached(tmp_path / "models", good) is not None
    assert cache.cached(tmp_path / "models", bad) is None
    assert not [r for r in caplog.records if "cannot cache" in r.getMessage()]


def test_without_a_revert_the_prefetch_fetches_the_assigned_revision_and_says_when_it_cannot(tmp_path, caplog):
    agent, good, _ = _assigned(tmp_path)
    with caplog.at_level(logging.WARNING, logger="edgeline.agent"):
        asyncio.run(agent._prefetch())
    assert cache.cached(tmp_path / "models", good) is not None
    assert [r for r in caplog.records if "cannot cache" in r.getMessage() and "v2.onnx" in r.getMessage()]
