"""What every cloud's ``Cluster`` component exposes (``cfcr.aws.Cluster``, ``cfcr.gcp.Cluster``,
``cfcr.azure.Cluster``): the attributes a platform team's program may read whatever the cloud.
Each cloud's class adds its own (AWS: the VPC, subnets, security groups, ...)."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import pulumi

from cfcr.bootstrap import ClusterBootstrap
from cfcr.bootstrap.version import KubernetesVersion

PoolT = TypeVar("PoolT", bound=pulumi.ComponentResource)
"""The cloud's node pool component."""


class ClusterComponent(pulumi.ComponentResource, Generic[PoolT]):
    """A self-managed, upstream Kubernetes cluster (kubeadm): the attributes every cloud sets."""

    bootstrap: ClusterBootstrap
    """PKI, per-role secrets and user-data."""
    node_pools: dict[str, PoolT]
    """Pool name -> its node pool component."""
    admin_kubeconfig: pulumi.Output[str]
    """kubeconfig of the ``admin`` user (secret), for the endpoint clients use."""
    api_server_url: pulumi.Output[str]
    """``https://<name>:6443`` clients use: ``apiDnsName``, or the API load balancer's public
    name or address when the API is public, the private name otherwise."""
    private_api_server_url: str
    """``https://api.<cluster>.cfcr.internal:6443``, what nodes use."""
    control_plane_machines: list[pulumi.Resource]
    """The control-plane machines: what must exist before anything waits for the API to boot."""
    control_plane_rolled: list[pulumi.Resource]
    """The last member's rollout gate: done once every member an update replaced is back."""
    version_record: KubernetesVersion
    """The deployed Kubernetes versions in state (cfcr/bootstrap/version.py): its check refuses a
    skipped minor, a downgrade or kubelets ahead of the API server; every machine waits for it."""
    outputs: dict[str, Any]
    """The component's outputs by name (the stack exports those of its cloud's ``contract.EXPORTS``)."""
