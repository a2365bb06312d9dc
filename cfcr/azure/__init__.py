"""Azure: the cloud package (``contract.py`` is its side of :mod:`cfcr.clouds`'s contract).

``Cluster`` (``cluster.py``) builds a whole cluster, one concern per file: the resource group,
virtual network, subnets and NAT gateway (``network.py``), the network security group and its
application security groups (``security.py``), user-assigned identities and the control plane's
custom role (``identity.py``), the Key Vault and its per-secret grants (``secrets.py``), the API
load balancers and private name (``api_lb.py``), the control-plane VMs and etcd disks
(``control_plane.py``), a scale set per pool (``NodePool``, ``node_pool.py``) and the image
(``image.py``); the node hook (``node_hook.py``), the addon profile (``addon_profile.py``) and
the flow check's reader (``flows.py``).
"""

from cfcr.azure.cluster import Cluster, ClusterArgs
from cfcr.azure.node_pool import NodePool, NodePoolArgs

__all__ = ["Cluster", "ClusterArgs", "NodePool", "NodePoolArgs"]
