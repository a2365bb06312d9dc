"""The Kubernetes provider the addons use.

``cluster_identifier`` is the cluster's name, a value that never changes: when the
kubeconfig changes (a renewed client certificate, a new load balancer name) the provider is
updated in place instead of replaced, so no addon is ever recreated by a credential
rotation. Server-side apply lets cfcr share objects with controllers (and patch what an
upstream manifest created).
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_kubernetes as k8s


def cluster_provider(name: str, kubeconfig: pulumi.Input[str], cluster_name: str,
                     parent: pulumi.Resource | None = None,
                     depends_on: Sequence[pulumi.Resource] = ()) -> k8s.Provider:
    """A ``kubernetes`` provider for the cluster, stable across credential changes."""
    return k8s.Provider(
        name,
        kubeconfig=pulumi.Output.secret(kubeconfig),
        cluster_identifier=cluster_name,
        enable_server_side_apply=True,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on)),
    )
