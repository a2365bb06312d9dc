"""A cluster's bootstrap alone, for a new cloud whose package builds no machines yet
(:class:`cfcr.clouds.BootstrapOnlyCloud`; every cloud of :data:`cfcr.clouds.CLOUD_PACKAGES` has
its ``Cluster`` now): the PKI, the per-role secrets and the user-data of every role, with the cloud's node
hook, the fixed control-plane addresses of the topology plan, the stable API name, and the
cluster's :class:`~cfcr.bootstrap.version.KubernetesVersion` record (the skew policy on every
deploy). A cloud's issue replaces it with a ``Cluster`` component that wraps the same bootstrap."""

from __future__ import annotations

from typing import Any

import pulumi

from cfcr.bootstrap.component import ClusterBootstrap, ClusterBootstrapArgs
from cfcr.bootstrap.version import KubernetesVersion
from cfcr.config import ClusterSpec
from cfcr.config.topology import api_endpoint, control_plane_members
from cfcr.node import NodeHook

EXPORTS = ("apiServerUrl", "adminKubeconfig")
"""The outputs a bootstrap-only cluster adds to the common ones."""


def build_bootstrap_only(spec: ClusterSpec, hook: NodeHook, etcd_disk_device: str) -> tuple[ClusterBootstrap, dict[str, Any]]:
    """The bootstrap of ``spec``'s cluster and its outputs (:data:`EXPORTS`)."""
    assert spec.name is not None, "load_spec names every cluster"
    members = control_plane_members(spec)
    bootstrap = ClusterBootstrap(
        spec.name,
        ClusterBootstrapArgs(
            spec=spec,
            api_endpoint=api_endpoint(spec),
            members=members,
            hook=hook,
            etcd_disk_devices=[etcd_disk_device] * len(members),
        ),
    )
    # the deployed versions in state, and the skew policy on every deploy (a cloud's Cluster builds its own)
    KubernetesVersion.for_spec(spec.name, spec, opts=pulumi.ResourceOptions(parent=bootstrap))
    return bootstrap, {"apiServerUrl": bootstrap.api_server_url, "adminKubeconfig": bootstrap.admin_kubeconfig}
