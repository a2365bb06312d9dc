"""A platform team's program: the spec comes from code, not from a stack file.

It builds the cloud-neutral bootstrap of a cluster (PKI, per-role secrets, user-data) with
typed args, reusing cfcr's validation, and exports what its own machines need.
"""

from __future__ import annotations

import pulumi

from cfcr.aws.node_hook import AwsNodeHook
from cfcr.bootstrap import ClusterBootstrap, ClusterBootstrapArgs
from cfcr.config import load_spec
from cfcr.config.topology import control_plane_members


def build() -> ClusterBootstrap:
    spec = load_spec(
        {
            "cloud": "aws",
            "region": "eu-central-1",
            "name": "payments",
            "production": True,
            "kubernetes": {"version": "stable"},
            "controlPlane": {"count": 3},
            "nodePools": [{"name": "apps", "minSize": 3, "maxSize": 12}],
            "pki": {"users": [{"name": "payments-oncall", "groups": ["payments:operators"]}]},
        },
        stack=pulumi.get_stack(),
    )
    return ClusterBootstrap(
        "payments",
        ClusterBootstrapArgs(
            spec=spec,
            api_endpoint="api.payments.example.internal",
            members=control_plane_members(spec),
            hook=AwsNodeHook(region=spec.region),
            etcd_disk_devices=["/dev/nvme1n1"] * spec.control_plane.count,
        ),
    )


if __name__ == "__main__":  # Pulumi runs the program as __main__
    bootstrap = build()
    pulumi.export("apiServerUrl", bootstrap.api_server_url)
    pulumi.export("oncallKubeconfig", bootstrap.pki.kubeconfig("payments-oncall", bootstrap.api_server_url))
    pulumi.export("roles", sorted(bootstrap.user_data))
