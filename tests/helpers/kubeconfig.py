"""Kubeconfigs that authenticate by bearer token against a cluster an admin kubeconfig names."""

from __future__ import annotations

from pathlib import Path

import yaml


def token_kubeconfig(admin_kubeconfig: Path, user: str, token: str, path: Path, namespace: str | None = None) -> Path:
    """The admin kubeconfig's cluster (server and CA), with `token` as the only credential: no client
    certificate, which the API server would prefer over the token."""
    cluster = yaml.safe_load(admin_kubeconfig.read_text())["clusters"][0]
    context = {"cluster": cluster["name"], "user": user}
    if namespace:
        context["namespace"] = namespace
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "clusters": [cluster],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": user, "context": context}], "current-context": user}))
    path.chmod(0o600)
    return path
