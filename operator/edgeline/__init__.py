"""Edgeline: the lifecycle of ML models across cloud and K3s edge clusters."""

GROUP = "edgeline.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
FIELD_MANAGER = "edgeline"

__version__ = "0.1.0"
