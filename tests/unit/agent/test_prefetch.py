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


def _revision(name: str, uri: str, data: bytes) -> RevisionRef:
    return RevisionRef(revision=name, version=name, uri=uri, digest="sha256:" + hashlib.sha256(data).hexdigest())


def _agent(tmp_path) -> Agent:
    return Agent(AgentConfig(cluster="line-7", cache_dir=tmp_path, cache_host_dir=str(tmp_path)), hub=None, site=None)


def test_after_a_site_revert_the_prefetch_leaves_the_reverted_revision_alone(tmp_path, caplog):
    good_file = tmp_path / "v1.onnx"
    good_file.write_bytes(b"model one")
    good = _revision("r1", good_file.as_uri(), b"model one")
    # The reverted model's origin is out of reach (nothing listens on port 9 of loopback).
    bad = _revision("r2", "http://127.0.0.1:9/v2.onnx", b"model two")
    agent = _agent(tmp_path)
    obj = "ns-detector"
    agent.state.assignments[obj] = pull.Assignment("ns", "detector", obj, "models", bad, good).to_json()
    agent.state.reverted[obj] = {"r2": "r1"}          # the site rolled r2 back to r1 by itself
    with caplog.at_level(logging.WARNING, logger="edgeline.agent"):
        asyncio.run(agent._prefetch())
    assert cache.cached(tmp_path / "models", good) is not None
    assert cache.cached(tmp_path / "models", bad) is None
    assert not [r for r in caplog.records if "cannot cache" in r.getMessage()]


def test_without_a_revert_the_prefetch_fetches_the_assigned_revision_and_says_when_it_cannot(tmp_path, caplog):
    good_file = tmp_path / "v1.onnx"
    good_file.write_bytes(b"model one")
    good = _revision("r1", good_file.as_uri(), b"model one")
    bad = _revision("r2", "http://127.0.0.1:9/v2.onnx", b"model two")
    agent = _agent(tmp_path)
    agent.state.assignments["ns-detector"] = pull.Assignment("ns", "detector", "ns-detector", "models", bad,
                                                             good).to_json()
    with caplog.at_level(logging.WARNING, logger="edgeline.agent"):
        asyncio.run(agent._prefetch())
    assert cache.cached(tmp_path / "models", good) is not None
    assert [r for r in caplog.records if "cannot cache" in r.getMessage() and "v2.onnx" in r.getMessage()]
