"""kosmosctl: operate Kosmos on Kubernetes (apply, status, model pins, scale, plugins)."""

from kosmos.ctl._cli import main
from kosmos.ctl._cluster import Cluster, CtlError, Plugin, ServedModel, Status, Workload, connect

__all__ = ["Cluster", "CtlError", "Plugin", "ServedModel", "Status", "Workload", "connect", "main"]
