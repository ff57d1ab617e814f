"""What approvers see (stage, metrics, variants) and what `edgeline status` says per cluster."""

import datetime as dt

from edgeline.cli import build_parser
from edgeline.commands.approve import evidence_lines
from edgeline.commands.status import format_tree, status_summary


def test_approvers_see_the_stage_metrics_and_variants_of_the_pending_version():
    pending = {"stage": "production", "metrics": {"f1": 0.91, "accuracy": 0.975},
               "revision": {"revision": "abc", "variants": [
                   {"name": "default", "architecture": "amd64", "accelerator": "cpu", "digest": "sha256:1"},
                   {"name": "gpu-fp16", "accelerator": "gpu", "digest": "sha256:3"}]}}
    assert evidence_lines(pending) == [
        "stage       production",
        "metrics     accuracy 0.975, f1 0.91",
        "variants    default (amd64/cpu, sha256:1), gpu-fp16 (gpu, sha256:3)"]


def test_no_metrics_is_said_plainly():
    assert "none recorded" in evidence_lines({"revision": {"revision": "abc"}})[1]


def test_the_status_tree_names_each_cluster_s_variant_and_why():
    obj = {"metadata": {"name": "detector", "namespace": "factory"}, "spec": {},
           "status": {"phase": "Healthy", "desiredRevision": {"revision": "r1"},
                      "clusters": [{"name": "edge-b", "phase": "Ready", "revision": "r1", "variant": "arm64-int8",
                                    "variantReason": "arm64-int8: built for arm64, as the nodes are"}]}}
    tree = format_tree(status_summary(obj, dt.datetime(2026, 11, 25, tzinfo=dt.timezone.utc)))
    assert "edge-b  Ready  r1  0/0 pods  seen - ago  variant arm64-int8: built for arm64, as the nodes are" in tree


def test_promote_parses_with_production_as_the_default_stage():
    args = build_parser(["promote", "detector-3"]).parse_args(["promote", "detector-3", "-n", "factory"])
    assert (args.name, args.to, args.namespace) == ("detector-3", "production", "factory")
