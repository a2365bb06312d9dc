"""What the addons need to know about GCP (:class:`cfcr.addons.cloud.CloudAddonProfile`).

* CCM: cloud-provider-gcp, ``--cloud-provider=gce``, INI cloud config. cfcr's CNI routes pods
  and kube-controller-manager allocates their ranges, so the CCM neither allocates node CIDRs
  nor programs routes: ``--allocate-node-cidrs=false``, ``--configure-cloud-routes=false`` and
  its node IPAM and route controllers off (kOps turns the same two off when something else
  does IPAM: ``pkg/model/components/gcpcloudcontrollermanager.go``). The cloud config gets
  ``[global] multizone = true`` unless it says otherwise: without it the provider manages only
  its own zone (``managedZones = [zone]``) and cannot find, so never initializes, the nodes of
  the other zones; and ``node-tags = <cluster>-node``, the network tag every node carries, which
  the firewall rules the CCM creates for Services of type LoadBalancer target (cfcr's own rules
  target service accounts); ``network-name`` and ``subnetwork-name`` (the nodes'). It keeps its
  cluster id in ``kube-system/ingress-uid``, which a Role lets it create and change.
* CSI: the PD driver has no chart; its objects are authored (:mod:`cfcr.gcp.pd_csi`), its
  controller host-network on the control plane (credentials from the metadata server).
* StorageClass: pd-balanced (GCP encrypts every disk at rest); with ``cfcr:gcp.diskKmsKey``,
  ``disk-encryption-kms-key`` names the customer-managed key.
* cluster-autoscaler: the ``gce`` provider, one ``--nodes=MIN:MAX:<zonal MIG URL>`` per pool
  and zone (its GCE support takes only zonal MIGs), the project from the metadata server.
* Pods are kept away from the metadata server (``169.254.169.254``) on its HTTP ports; DNS
  to the same address (the VPC resolver) stays open.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cfcr.addons.cloud import CloudAddonProfile, CloudFacts
from cfcr.config import ClusterSpec
from cfcr.gcp.labels import node_tag
from cfcr.gcp.pd_csi import pd_csi_objects

METADATA_SERVER = "169.254.169.254/32"
"""The Compute Engine metadata server (``metadata.google.internal``)."""
METADATA_PORTS = (80, 443)
"""Its HTTP port, and 443 for its HTTPS endpoint; port 53 (the VPC's DNS resolver on the same
address, which CoreDNS forwards to) is not denied."""

CCM_ARGS = (
    "--allocate-node-cidrs=false",
    "--controllers=*,-node-ipam-controller,-node-route-controller",
)
"""The GCP CCM's flags besides cfcr's common ones (which include ``--configure-cloud-routes=false``)."""

CLOUD_CONFIG_DEFAULTS: Mapping[str, Mapping[str, Any]] = {"global": {"multizone": True}}
"""Written where ``cfcr:cloudConfig`` does not say otherwise."""


def _short(reference: str) -> str:
    return reference.rstrip("/").rsplit("/", 1)[-1]


def cluster_config_defaults(facts: CloudFacts) -> Mapping[str, Mapping[str, Any]]:
    """``node-tags``: the nodes' network tag (:func:`cfcr.gcp.labels.node_tag`); ``network-name``
    and ``subnetwork-name``: the nodes' network and subnetwork (cfcr's, or the existing ones):
    on a custom-mode network the provider cannot pick a subnetwork for an internal
    LoadBalancer Service by itself."""
    from cfcr.gcp.names import resource_name

    network = _short(facts.existing_network) if facts.existing_network else resource_name(facts.cluster_name)
    subnetwork = (_short(facts.existing_subnets[0]) if facts.existing_subnets
                  else resource_name(f"{facts.cluster_name}-nodes"))
    return {"global": {"node-tags": node_tag(facts.cluster_name), "network-name": network,
                       "subnetwork-name": subnetwork}}


def disk_kms_key(spec: ClusterSpec) -> str | None:
    """``cfcr:gcp.diskKmsKey``, or None (also where the spec has no ``gcp`` section)."""
    gcp = getattr(spec, "gcp", None)
    key = getattr(gcp, "disk_kms_key", None)
    return str(key) if key else None


def storage_parameters(spec: ClusterSpec) -> dict[str, str]:
    """The customer-managed key of the cluster's disks, when one is set."""
    key = disk_kms_key(spec)
    return {"disk-encryption-kms-key": key} if key else {}


def autoscaler_values(facts: CloudFacts) -> dict[str, Any]:
    """cluster-autoscaler's GCE provider (the groups come as ``--nodes`` from the facts)."""
    return {"cloudProvider": "gce"}


PROFILE = CloudAddonProfile(
    ccm_provider="gce",
    csi_provisioner="pd.csi.storage.gke.io",
    storage_parameters={"type": "pd-balanced", "csi.storage.k8s.io/fstype": "ext4"},
    cloud_config_format="ini",
    node_name_pattern=r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9-]+)*$",  # the instance name
    node_names_resolve=False,  # a bare instance name: zonal DNS resolves it from its own zone only
    ccm_args=CCM_ARGS,
    cloud_config_defaults=CLOUD_CONFIG_DEFAULTS,
    cloud_config_defaults_of=cluster_config_defaults,
    ccm_configmaps=("ingress-uid",),
    csi_objects=pd_csi_objects,
    storage_parameters_of=storage_parameters,
    autoscaler_values=autoscaler_values,
    autoscaler_auto_discovery=False,
    metadata_cidrs=(METADATA_SERVER,),
    metadata_ports=METADATA_PORTS,
)
"""GCP's addon profile."""
