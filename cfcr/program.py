"""The cfcr program, shared by ``pulumi up`` (``__main__.py``) and the offline render.

Read the stack's spec, ask the cloud registry (:mod:`cfcr.clouds`) for the spec's cloud
package, let it build the cluster, apply the addons where the cloud built machines, and
return what to export: the outputs every cloud shares, then the cloud's own. No cloud is
named here: a cloud is a package that implements the contract.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi

from cfcr import channels, clouds
from cfcr.bootstrap import ClusterBootstrap
from cfcr.config import ClusterSpec, load_from_pulumi
from cfcr.config.topology import api_endpoint, control_plane_members
from cfcr.constants import INTERNAL_API_DOMAIN
from cfcr.node.etcd import etcd_static_pod

__all__ = ["INTERNAL_API_DOMAIN", "ProgramResult", "api_endpoint", "build", "export", "main"]


@dataclass
class ProgramResult:
    """What the program built: outputs to export, user-data per role, authored manifests."""

    exports: dict[str, Any]
    user_data: dict[str, pulumi.Output[bytes]]
    manifests: dict[str, Any] = field(default_factory=dict)


def build(spec: ClusterSpec) -> ProgramResult:
    """Build every resource of ``spec``'s cluster with its cloud's package."""
    from cfcr.addons import ClusterAddons, ClusterAddonsArgs, CloudFacts

    assert spec.name is not None
    built = clouds.package(spec.cloud, pulumi.get_stack()).build(spec)
    if built.addons is not None:
        inputs = built.addons
        ClusterAddons(
            f"{spec.name}-addons",
            ClusterAddonsArgs(
                spec=spec,
                kubeconfig=inputs.kubeconfig,
                api_server_url=inputs.api_server_url,
                gate_url=inputs.gate_url,
                gate_after=inputs.gate_after,
                gate_machines=inputs.gate_machines,
                cloud=CloudFacts.from_spec(spec, inputs.node_groups, termination_queue_url=inputs.termination_queue_url,
                                           cloud_names=inputs.cloud_names),
            ),
            opts=pulumi.ResourceOptions(parent=inputs.parent),
        )
    exports = {**common_exports(spec, built.bootstrap), **built.exports}
    return ProgramResult(exports=exports, user_data=built.bootstrap.user_data, manifests=_static_pods(spec))


def common_exports(spec: ClusterSpec, bootstrap: ClusterBootstrap) -> dict[str, Any]:
    """The outputs every cloud exports alike."""
    return {
        "kubernetesVersion": channels.resolve(spec.kubernetes.version).kubernetes.version,
        "caBundle": bootstrap.pki.ca_bundle,
        "controlPlaneMembers": [{"name": m.name, "address": m.address, "nodeName": m.kubelet_name}
                                for m in bootstrap.members],
        "secretReaders": bootstrap.readers,
    }


def _static_pods(spec: ClusterSpec) -> dict[str, Any]:
    """The etcd static Pod of each control-plane member, as the render's manifests."""
    release = channels.resolve(spec.kubernetes.version)
    members = control_plane_members(spec)
    return {
        f"static-pods/{member.name}/etcd.yaml": etcd_static_pod(spec, release, members, index)
        for index, member in enumerate(members)
    }


def main() -> ProgramResult:
    """The program body: validate config (before any resource), then build."""
    return build(load_from_pulumi())


def export(result: ProgramResult) -> None:
    """Export the program's outputs as stack outputs."""
    for name, value in result.exports.items():
        pulumi.export(name, value)
