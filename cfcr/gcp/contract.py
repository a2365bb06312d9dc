"""GCP's side of the cloud contract (:class:`cfcr.clouds.CloudPackage`): the registry finds
``CLOUD`` here for ``cfcr:cloud: gcp``. The package builds the cluster's bootstrap alone for
now (:mod:`cfcr.bootstrap.standalone`); ``cfcr.gcp.Cluster`` replaces it in ``build``."""

from __future__ import annotations

import pulumi

from cfcr.bootstrap.standalone import EXPORTS
from cfcr.clouds import BootstrapOnlyCloud
from cfcr.config import ClusterSpec
from cfcr.gcp.addon_profile import PROFILE
from cfcr.gcp.node_hook import GcpNodeHook

ETCD_DISK_DEVICE = "/dev/disk/by-id/google-etcd"
"""The etcd disk attached with device name ``etcd`` (GCE names it ``google-<device name>``)."""


def project(spec: ClusterSpec) -> str:
    """The project that owns the cluster's secrets: ``gcp:project``, or ``<cluster>-project``."""
    return pulumi.Config("gcp").get("project") or f"{spec.name}-project"


def node_hook(spec: ClusterSpec) -> GcpNodeHook:
    """Secret Manager with the VM's service account."""
    return GcpNodeHook(project=project(spec))


CLOUD = BootstrapOnlyCloud(name="gcp", hook_type=GcpNodeHook, addon_profile=PROFILE, exports=EXPORTS,
                           etcd_disk_device=ETCD_DISK_DEVICE, hook_for=node_hook)
"""The contract's entry point for ``cfcr:cloud: gcp``."""
