"""Code the benches share: the operator's alert receiver as Alertmanager talks to it, and what
/proc and the operator's /metrics say about the operator process."""
