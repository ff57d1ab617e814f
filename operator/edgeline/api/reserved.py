"""Names Edgeline reserves for itself: the runtime's `EDGELINE_*` environment variables and the
label/annotation keys Edgeline sets on what it renders. Users cannot set them: admission
refuses them (the CEL rules below, in the generated CRDs) and the renderers drop or override
them (`reserved_env`, `reserved_key`), for objects stored before the rules existed.

The CEL strings are written for a CEL string literal: no backslashes.
"""

from __future__ import annotations

ENV_PREFIX = "EDGELINE_"
# Runtime settings that only tune the runtime's own performance; they say nothing about what
# is served or whose it is, so `runtime.env` may still set them. Every other EDGELINE_ name,
# including ones a later runtime adds, is Edgeline's.
TUNABLE_ENV = ("EDGELINE_INFERENCE_THREADS", "EDGELINE_INTRA_OP_THREADS", "EDGELINE_MAX_REQUEST_BYTES",
               "EDGELINE_SHUTDOWN_GRACE_S")
KEY_DOMAIN = "edgeline.io"
OPERATOR_DOMAIN = "operator.edgeline.io"
MANAGED_BY_KEY = "app.kubernetes.io/managed-by"


def reserved_env(name: str) -> bool:
    """Whether an environment variable name is Edgeline's (case-insensitive: the runtime's
    settings reader does not tell EDGELINE_MODEL_URI and edgeline_model_uri apart)."""
    return name.upper().startswith(ENV_PREFIX) and name not in TUNABLE_ENV


def reserved_key(key: str) -> bool:
    """Whether a label or annotation key is Edgeline's: edgeline.io/..., operator.edgeline.io/...
    (and its subdomains, e.g. alerts.operator.edgeline.io/) and app.kubernetes.io/managed-by.
    Other subdomains stay free: the dev environment's kwok stages read kwok.edgeline.io/ keys
    that steps set in podAnnotations."""
    prefix, slash, _ = key.partition("/")
    if not slash:
        return False
    prefix = prefix.lower()
    return (prefix in (KEY_DOMAIN, OPERATOR_DOMAIN) or prefix.endswith("." + OPERATOR_DOMAIN)
            or key.lower() == MANAGED_BY_KEY)


def _cel_list(names: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{n}'" for n in names) + "]"


_ENV = f"(e.name.matches('(?i)^{ENV_PREFIX}') && !(e.name in {_cel_list(TUNABLE_ENV)}))"
_KEY = (f"(k.lowerAscii().startsWith('{KEY_DOMAIN}/') || "
        f"k.lowerAscii().matches('^([^/]*[.])?operator[.]edgeline[.]io/') || k.lowerAscii() == '{MANAGED_BY_KEY}')")


def env_rule() -> dict:
    """CEL rule for one EnvVar item: not a reserved name. Per item, so that the message can name
    the variable within CEL's cost budget (a filter over the list cannot)."""
    return {
        "rule": f"!{_ENV.replace('e.name', 'self.name')}",
        "messageExpression": f"'environment variable ' + self.name + ' is set by Edgeline and cannot be set "
                             f"here: EDGELINE_* names are reserved (allowed: {', '.join(TUNABLE_ENV)})'",
        "fieldPath": ".name",
    }


def keys_rule(what: str) -> dict:
    """CEL rule for a map of labels or annotations (`self`): no keys Edgeline sets."""
    return {
        "rule": f"!self.exists(k, {_KEY})",
        "messageExpression": f"'{what} key ' + self.filter(k, {_KEY})[0] + ' is reserved for Edgeline: "
                             f"edgeline.io/*, operator.edgeline.io/* and {MANAGED_BY_KEY} are set by Edgeline only'",
    }
