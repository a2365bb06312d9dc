"""``python -m cfcr smoke --kubeconfig FILE``: a short functional test of any cluster."""

from cfcr.smoke.api import ClusterApi, ExecResult, NodeInfo, PodInfo
from cfcr.smoke.checks import CheckResult, Report, SmokeOptions, run_smoke

__all__ = ["CheckResult", "ClusterApi", "ExecResult", "NodeInfo", "PodInfo", "Report", "SmokeOptions", "run_smoke"]
