"""Importing this module registers every controller's kopf handlers."""

from edgeline.controllers import (alerts, approvals, datapipeline, edgecluster, edgedeployment,  # noqa: F401
                                  indexes, mlmodel)
