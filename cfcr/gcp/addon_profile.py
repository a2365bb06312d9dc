"""What the addons need to know about GCP (:class:`cfcr.addons.cloud.CloudAddonProfile`).

CCM ``--cloud-provider=gce`` with an INI cloud config; the PD CSI driver has no chart in the
channel, so only its StorageClass (pd-balanced; GCP encrypts every disk at rest) is created;
cluster-autoscaler is not wired for GCP yet.
"""

from __future__ import annotations

from cfcr.addons.cloud import CloudAddonProfile

PROFILE = CloudAddonProfile(
    ccm_provider="gce",
    csi_provisioner="pd.csi.storage.gke.io",
    storage_parameters={"type": "pd-balanced"},
    cloud_config_format="ini",
    node_name_pattern=r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9-]+)*$",  # the instance name
)
"""GCP's addon profile."""
