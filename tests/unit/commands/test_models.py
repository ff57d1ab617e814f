"""`edgeline models`: MLModels with phase, version, opset and size."""

import datetime as dt

from edgeline.commands.models import format_models, model_row

NOW = dt.datetime(2026, 5, 1, 12, 0, 0, tzinfo=dt.timezone.utc)


def _model(name, version, phase=None, opsets=(), size=None, message=None):
    status = {}
    if phase:
        status = {"phase": phase, "inspection": {"opsetImports": [{"domain": d, "version": v} for d, v in opsets],
                                                 "sizeBytes": size},
                  "conditions": [{"type": "Ready", "status": "True" if phase == "Ready" else "False",
                                  "message": message}]}
    return {"metadata": {"name": name, "namespace": "factory", "creationTimestamp": "2026-05-01T11:58:00Z"},
            "spec": {"model": "det", "version": version}, "status": status}


def test_the_default_domain_opset_and_the_size_for_people():
    rows = [model_row(_model("det-2", "2.0.0", "Ready", [("com.microsoft", 1), ("", 17)], 1536)),
            model_row(_model("det-1", "1.0.0", "Invalid", message="digest mismatch")),
            model_row(_model("det-3", "3.0.0"))]
    assert rows[0]["opset"] == 17 and rows[0]["sizeBytes"] == 1536
    lines = format_models(rows, NOW).splitlines()
    assert lines[0].split() == ["NAME", "MODEL", "VERSION", "PHASE", "OPSET", "SIZE", "USED", "BY", "AGE"]
    assert [line.split() for line in lines[1:4]] == [
        ["det-1", "det", "1.0.0", "Invalid", "-", "-", "-", "2m"],
        ["det-2", "det", "2.0.0", "Ready", "17", "1.5Ki", "-", "2m"],
        ["det-3", "det", "3.0.0", "Pending", "-", "-", "-", "2m"],
    ]
    assert lines[-1] == "det-1: digest mismatch"


def test_all_namespaces_adds_the_column_and_nothing_found_says_so():
    assert format_models([model_row(_model("a", "1"))], NOW, namespaces=True).startswith("NAMESPACE")
    assert format_models([], NOW) == "no MLModels found"


def test_used_by_is_read_from_the_model_status():
    model = _model("det-2", "2.0.0", "Ready")
    model["status"]["usedBy"] = ["factory/d1 (pending)", "factory/d2 (current, last-known-good)"]
    row = model_row(model)
    assert row["usedBy"] == model["status"]["usedBy"]
    assert "factory/d1 (pending), factory/d2 (current, last-known-good)" in format_models([row], NOW)
