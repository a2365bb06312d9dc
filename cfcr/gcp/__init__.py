"""GCP: ``Cluster`` (``cfcr:gcp:Cluster``) and ``NodePool`` (``cfcr:gcp:NodePool``).

One file per concern: ``network.py`` (VPC network, subnetworks, Cloud NAT), ``security.py``
(firewall rules by service account), ``api_lb.py`` (the API load balancers and private DNS),
``identity.py`` (service accounts, the control plane's custom role), ``secrets.py`` (Secret
Manager), ``control_plane.py`` (members and etcd disks), ``node_pool.py`` (zonal managed
instance groups), ``backups.py`` (Cloud Storage snapshots), ``image.py`` (Ubuntu images),
``labels.py`` and ``names.py`` (GCP's label and name rules), ``flows.py`` (the flow check's
reader), ``pd_csi.py`` (the PD CSI driver's objects), ``cluster.py`` (all of it).
"""

from cfcr.gcp.cluster import Cluster, ClusterArgs
from cfcr.gcp.node_pool import NodePool, NodePoolArgs

__all__ = ["Cluster", "ClusterArgs", "NodePool", "NodePoolArgs"]
