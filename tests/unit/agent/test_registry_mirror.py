"""The site's registry mirror: how the agent is told about it, and what the join manifests carry."""

from __future__ import annotations

import pytest

from edgeline.agent import cache
from edgeline.agent.bootstrap import site_manifests
from edgeline.api.edgedeployment import RevisionRef
from edgeline.commands.agent import registry_mirrors


@pytest.mark.parametrize("given, env, expected", [
    (None, None, ()),
    (None, "", ()),
    (["http://127.0.0.1:5000/"], None, ("http://127.0.0.1:5000",)),
    (None, "http://mirror.site:5000, https://mirror-2.site", ("http://mirror.site:5000", "https://mirror-2.site")),
    (["https://flag.site"], "http://env.site", ("https://flag.site",)),   # the flag wins over the environment
])
def test_mirrors_come_from_the_flags_or_the_environment(given, env, expected):
    assert registry_mirrors(given, env) == expected


@pytest.mark.parametrize("bad", ["mirror.site:5000", "oci://mirror.site", "ftp://mirror.site"])
def test_a_mirror_must_be_an_http_url(bad):
    with pytest.raises(SystemExit, match="must be an http:// or https:// URL"):
        registry_mirrors([bad], None)


def _agent_env(docs) -> dict:
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    return {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_join_passes_the_mirror_to_the_agent_only_when_given():
    assert "EDGELINE_AGENT_REGISTRY_MIRROR" not in _agent_env(site_manifests("line-7", "{}", "t", "img"))
    env = _agent_env(site_manifests("line-7", "{}", "t", "img", registry_mirror="http://mirror.site:5000"))
    assert env["EDGELINE_AGENT_REGISTRY_MIRROR"] == "http://mirror.site:5000"


def test_a_tag_only_reference_never_enters_the_cache(tmp_path):
    revision = RevisionRef(revision="r1", digest="sha256:" + "a" * 64, uri="oci://registry.example/models/m:1.0")
    with pytest.raises(cache.CacheMiss, match="names a tag, not a manifest digest"):
        cache.ensure(tmp_path, revision, mirrors=("http://127.0.0.1:1",))
    assert list(tmp_path.iterdir()) == []


def test_join_refuses_a_mirror_that_is_not_a_url(capsys):
    from edgeline.cli import main

    with pytest.raises(SystemExit):
        main(["cluster", "join", "line-7", "--registry-mirror", "mirror.site:5000"])
    assert "is not an http:// or https:// URL" in capsys.readouterr().err
