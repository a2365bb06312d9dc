"""What the addons need to know about Azure (:class:`cfcr.addons.cloud.CloudAddonProfile`).

CCM ``--cloud-provider=azure`` with a JSON cloud config (``azure.json``); the Azure Disk CSI
driver's chart reads the same cloud config Secret; StorageClass Premium_LRS (Azure encrypts
every disk at rest); cluster-autoscaler is not wired for Azure yet.
"""

from __future__ import annotations

from typing import Any

from cfcr.addons.cloud import NAMESPACE, CloudAddonProfile, CloudFacts
from cfcr.addons.images import ImageRewriter
from cfcr.util import deep_merge


def azure_disk_values(facts: CloudFacts, rewriter: ImageRewriter, repository: str, tag: str,
                      control_plane_count: int) -> dict[str, Any]:
    """The Azure Disk chart's values: its image only when mirrored, and the cloud config Secret."""
    values: dict[str, Any] = {"image": {"azuredisk": {"repository": rewriter.repository(repository.rsplit("/", 1)[0]) + "/",
                                                      "tag": tag}}} if rewriter.active else {}
    return deep_merge(values, {"controller": {"cloudConfigSecretName": "cloud-config",
                                              "cloudConfigSecretNamespace": NAMESPACE}})


PROFILE = CloudAddonProfile(
    ccm_provider="azure",
    csi_provisioner="disk.csi.azure.com",
    storage_parameters={"skuName": "Premium_LRS"},
    cloud_config_format="json",
    node_name_pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$",  # the VM or scale set instance name
    csi_values=azure_disk_values,
)
"""Azure's addon profile."""
