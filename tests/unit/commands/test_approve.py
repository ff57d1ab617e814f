"""`edgeline approve`: what it shows before approving, and the Approval it creates."""

from edgeline.commands.approve import approval_manifest, describe

OBJ = {
    "metadata": {"name": "detector", "namespace": "factory", "uid": "u-1"},
    "spec": {"placement": {"clusterSelector": {"matchLabels": {"edgeline.io/line": "press-1"}}},
             "rollout": {"waves": [{"name": "pilot", "percentage": 50}, {"name": "all", "percentage": 100}],
                         "soakSeconds": 600}},
    "status": {
        "currentRevision": {"revision": "r1", "version": "1.0.0"},
        "approvalPolicy": {"sources": ["lines"], "approverGroups": ["qa"], "minApprovers": 2},
        "pendingApproval": {"revision": {"revision": "r2", "mlmodel": "detector-2.0.0", "model": "detector",
                                         "version": "2.0.0", "digest": "sha256:ab", "uri": "https://m/x.onnx",
                                         "runtime": {"replicas": 1}},
                            "requestedBy": "ci", "authors": ["alice", "ci"], "approvals": [],
                            "refused": ["bob is not approving as a member of an approver group (qa)"]}}}


def test_it_shows_everything_the_approval_covers():
    text = "\n".join(describe(OBJ))
    for words in ("detector 2.0.0 (MLModel detector-2.0.0)", "sha256:ab from https://m/x.onnx",
                  "clusters edgeline.io/line=press-1", "waves pilot, all; soak 600 s", "replaces:   1.0.0 (r1)",
                  "changed by: alice, ci", "2 approver(s) from qa (ApprovalPolicy lines)",
                  "not counted: bob is not approving"):
        assert words in text, words


def test_the_approval_is_in_the_user_s_name_for_this_object_and_revision():
    manifest = approval_manifest(OBJ, "r2", "carol", ["system:authenticated", "qa"], "looks good")
    assert manifest["spec"] == {"deployment": {"name": "detector", "uid": "u-1"}, "revision": "r2",
                                "approver": "carol", "groups": ["qa"], "comment": "looks good"}
    assert manifest["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert manifest["metadata"]["namespace"] == "factory"
