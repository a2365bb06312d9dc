"""What the addons need to know about Azure (:class:`cfcr.addons.cloud.CloudAddonProfile`).

* CCM: cloud-provider-azure, ``--cloud-provider=azure`` without its ``cloud-node`` controller
  and without node range allocation (:data:`CCM_ARGS`), JSON cloud config (``azure.json``) in
  the ``kube-system/cloud-config`` Secret. cfcr writes every key the user's ``cfcr:cloudConfig``
  leaves out (:func:`cloud_config_defaults`; the user's keys win, compared case-insensitively):
  the public cloud, tenant, subscription, resource group, region, the virtual network (and its
  group), the workers' subnet and the cluster's network security group (where Services of type
  LoadBalancer get their rules), ``vmType: vmss`` (the workers are scale sets; the members'
  standalone VMs are handled too), a Standard load balancer SKU with the control plane kept
  out of it, and credentials from the VM's managed identity. ``userAssignedIdentityID`` is
  left out on purpose: every control-plane member has its own user-assigned identity
  (:mod:`cfcr.azure.identity`), so no single client id names one on every member; without it
  IMDS hands out the token of the VM's only identity (OpenShift's installer relies on the
  same, ``pkg/asset/manifests/azure/cloudproviderconfig.go``). Tenant and subscription come
  from the provider's client config, the other names from the cluster's resources (Pulumi
  Outputs: the Secret's text waits for them, :func:`cfcr.addons.cloud.cloud_config_text`).
* cloud-node-manager: cloud-provider-azure's node controller runs per node, not in the CCM: a
  host-network DaemonSet on every node (:func:`cloud_node_manager_objects`) sets each Node's
  provider ID, addresses, zone and instance type from IMDS (``--use-instance-metadata``, no
  cloud config, no ARM call: the workers' identities hold no role); ``--wait-routes=false``,
  as cfcr's CNI routes the pods. Its image is the CCM pin's ``sidecars`` entry in the channel.
* CSI: the Azure Disk driver's chart reads the same cloud config Secret
  (``controller.cloudConfigSecretName``/``Namespace``; its controller and node plugin are
  host-network by the chart's defaults, so they reach IMDS past the pod guards).
* StorageClass: Premium_LRS; Azure encrypts every managed disk at rest (platform keys).
* cluster-autoscaler: the ``azure`` provider, ``vmss``, the cluster's subscription and
  resource group, the managed identity; one ``--nodes=MIN:MAX:<scale set name>`` per pool (the
  chart's Azure auto-discovery reads ``cluster-autoscaler-enabled``/``-name`` tags, not the
  ``k8s.io_cluster-autoscaler_*`` node-template tags cfcr puts on the scale sets).
* Pods are kept away from IMDS (``169.254.169.254``, HTTP 80) and the WireServer
  (``168.63.129.16``: 80 and 32526, the agent's channels); DNS (53) to the WireServer, the
  VNet's resolver, stays open (as :meth:`cfcr.azure.node_hook.AzureNodeHook.guarded_addresses`).
"""

from __future__ import annotations

from typing import Any

from cfcr.addons.base import cluster_role_binding, meta, sa_subject, service_account
from cfcr.addons.cloud import NAMESPACE, CloudAddonProfile, CloudFacts
from cfcr.addons.images import ImageRewriter
from cfcr.azure.node_hook import IMDS_ADDRESS, WIRESERVER_ADDRESS
from cfcr.channels import CloudComponent
from cfcr.util import deep_merge

CLOUD = "AzurePublicCloud"
"""``azure.json``'s ``cloud``: the public cloud's endpoints."""
CLOUD_CONFIG_DEFAULTS: dict[str, Any] = {
    "cloud": CLOUD,
    "vmType": "vmss",
    "loadBalancerSku": "standard",
    "useManagedIdentityExtension": True,
    "useInstanceMetadata": True,
    "excludeMasterFromStandardLB": True,
    # the file is the whole config: the default "merge" also reads the Secret
    # kube-system/azure-cloud-provider, which cfcr does not make and the CCM may not read
    "cloudConfigType": "file",
}
"""The ``azure.json`` keys that do not depend on the cluster (cloud-provider-azure's ``Config``
field names, ``pkg/provider/config``)."""
NAME_KEYS = ("tenantId", "subscriptionId", "resourceGroup", "vnetName", "vnetResourceGroup", "subnetName",
             "securityGroupName")
"""The ``azure.json`` keys taken from :attr:`~cfcr.addons.cloud.CloudFacts.cloud_names`
(:func:`cfcr.azure.contract.cloud_names`)."""

CCM_ARGS = (
    "--allocate-node-cidrs=false",
    "--controllers=*,-cloud-node",
)
"""The Azure CCM's flags besides cfcr's common ones: kube-controller-manager allocates the pod
ranges, and cloud-node-manager does the cloud-node controller's work on each node
(cloud-provider-azure's README runs the CCM with ``--controllers=*,-cloud-node``, as
Kubermatic's Azure CCM does with ``--allocate-node-cidrs=false``)."""

METADATA_CIDRS = (f"{IMDS_ADDRESS}/32", f"{WIRESERVER_ADDRESS}/32")
"""IMDS (the VM's identity tokens) and the WireServer (the guest agent's channel)."""
METADATA_PORTS = (80, 32526)
"""HTTP (IMDS, WireServer) and the WireServer's host plugin port; 53, the VNet's DNS on the
WireServer address, stays open."""

DISK_CONTROLLER_MAX_REPLICAS = 2
"""The Azure Disk chart's default controller replicas."""

CLOUD_NODE_MANAGER = "cloud-node-manager"
CLOUD_NODE_MANAGER_REPOSITORY = "azure-cloud-node-manager"
"""The image repository's last part, as the channel pins it next to the CCM (``sidecars``)."""
CLOUD_NODE_MANAGER_RULES: list[dict[str, Any]] = [
    {"apiGroups": [""], "resources": ["nodes"], "verbs": ["watch", "list", "get", "update", "patch"]},
    {"apiGroups": [""], "resources": ["nodes/status"], "verbs": ["patch"]},
]
"""cloud-provider-azure's ``cloud-node-manager`` ClusterRole (its Helm chart and examples)."""


def cloud_config_defaults(facts: CloudFacts) -> dict[str, Any]:
    """``azure.json`` where ``cfcr:cloudConfig`` leaves keys out: :data:`CLOUD_CONFIG_DEFAULTS`,
    ``location`` (the region) and the names of :data:`NAME_KEYS` the facts carry."""
    names = {key: facts.cloud_names[key] for key in NAME_KEYS if key in facts.cloud_names}
    return {**CLOUD_CONFIG_DEFAULTS, "location": facts.region, **names}


CLOUD_CONFIG_KEY = "cloud-config"
"""The key the Azure Disk CSI driver reads its cloud config from in the Secret it is given
(cloud-provider-azure's ``secretCloudConfigKey``): the CCM's file has the same name."""
MCR = "mcr.microsoft.com"
"""The registry of the Azure Disk chart's images (its ``image.baseRepo``)."""


def azure_disk_values(facts: CloudFacts, rewriter: ImageRewriter, repository: str, tag: str,
                      control_plane_count: int) -> dict[str, Any]:
    """The Azure Disk chart's values: its image only when mirrored; the cloud config Secret for
    the controller and the node plugin (the chart's ``cloudConfigSecretName`` and
    ``cloudConfigSecretNamespace`` of each; its default names a Secret cfcr does not make); the
    controller on the control-plane nodes (``runOnControlPlane``: only their identities hold
    the disk role), host-network (IMDS), one replica per member up to two (its health and
    metrics ports are host ports)."""
    values: dict[str, Any] = {}
    if rewriter.active:
        # a repository without a leading "/" is the whole image name to the chart; the sidecars'
        # defaults are "/oss/..." paths under image.baseRepo (mcr.microsoft.com)
        values["image"] = {"azuredisk": {"repository": rewriter.repository(repository), "tag": tag}}
        base = rewriter.registry(MCR)
        if base:
            values["image"]["baseRepo"] = base
    secret = {"cloudConfigSecretName": "cloud-config", "cloudConfigSecretNamespace": NAMESPACE}
    controller = {**secret, "runOnControlPlane": True, "hostNetwork": True,
                  "replicas": max(1, min(DISK_CONTROLLER_MAX_REPLICAS, control_plane_count))}
    return deep_merge(values, {"controller": controller, "node": dict(secret)})


def autoscaler_values(facts: CloudFacts) -> dict[str, Any]:
    """cluster-autoscaler's Azure provider on the workers' scale sets (``vmss``), with the VM's
    managed identity (no client id: see the module docstring), the cluster's subscription and
    resource group (the chart's ``azure*`` values); the groups come as ``--nodes``."""
    values: dict[str, Any] = {"cloudProvider": "azure", "azureVMType": "vmss", "azureUseManagedIdentityExtension": True}
    for key, name in (("azureSubscriptionID", "subscriptionId"), ("azureResourceGroup", "resourceGroup"),
                      ("azureTenantID", "tenantId")):
        if name in facts.cloud_names:
            values[key] = facts.cloud_names[name]
    return values


def cloud_node_manager_objects(facts: CloudFacts, pin: CloudComponent, rewriter: ImageRewriter) -> list[dict[str, Any]]:
    """cloud-node-manager on every Linux node, host-network (IMDS), tolerating every taint."""
    image = pin.sidecar(CLOUD_NODE_MANAGER_REPOSITORY)
    labels = {"k8s-app": CLOUD_NODE_MANAGER}
    return [
        service_account(CLOUD_NODE_MANAGER, NAMESPACE),
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": meta(CLOUD_NODE_MANAGER), "rules": CLOUD_NODE_MANAGER_RULES},
        cluster_role_binding(CLOUD_NODE_MANAGER, CLOUD_NODE_MANAGER, [sa_subject(CLOUD_NODE_MANAGER, NAMESPACE)]),
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": meta(CLOUD_NODE_MANAGER, NAMESPACE, labels),
            "spec": {
                "selector": {"matchLabels": dict(labels)},
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "10%"}},
                "template": {
                    "metadata": {"labels": dict(labels),
                                 "annotations": {"cluster-autoscaler.kubernetes.io/daemonset-pod": "true"}},
                    "spec": {
                        "priorityClassName": "system-node-critical",
                        "serviceAccountName": CLOUD_NODE_MANAGER,
                        "hostNetwork": True,
                        "dnsPolicy": "Default",
                        "nodeSelector": {"kubernetes.io/os": "linux"},
                        "tolerations": [{"operator": "Exists"}],
                        "containers": [{
                            "name": CLOUD_NODE_MANAGER,
                            "image": rewriter.image(image),
                            "command": ["cloud-node-manager"],
                            "args": ["--node-name=$(NODE_NAME)", "--use-instance-metadata=true",
                                     "--wait-routes=false", "--v=2"],
                            "env": [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
                            "resources": {"requests": {"cpu": "50m", "memory": "50Mi"},
                                          "limits": {"memory": "512Mi"}},
                        }],
                    },
                },
            },
        },
    ]


PROFILE = CloudAddonProfile(
    ccm_provider="azure",
    csi_provisioner="disk.csi.azure.com",
    storage_parameters={"skuName": "Premium_LRS"},
    cloud_config_format="json",
    cloud_config_key=CLOUD_CONFIG_KEY,
    node_name_pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$",  # the VM or scale set instance name
    ccm_args=CCM_ARGS,
    cloud_config_defaults_of=cloud_config_defaults,
    ccm_node_objects=cloud_node_manager_objects,
    csi_values=azure_disk_values,
    autoscaler_values=autoscaler_values,
    autoscaler_auto_discovery=False,
    metadata_cidrs=METADATA_CIDRS,
    metadata_ports=METADATA_PORTS,
)
"""Azure's addon profile."""
