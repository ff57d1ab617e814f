"""Importing this module registers every controller's kopf handlers."""

from edgeline.controllers import (alerts, analysis, approvals, datapipeline, edgecluster,  # noqa: F401
                                  edgedeployment, indexes, mlmodel, tenancy)
