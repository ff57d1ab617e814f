"""Importing this module registers every controller's kopf handlers."""

from edgeline.controllers import (admission, alerts, datapipeline, edgecluster, edgedeployment, indexes,  # noqa: F401
                                  mlmodel, tenancy)
