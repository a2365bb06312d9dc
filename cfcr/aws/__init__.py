"""AWS: ``Cluster`` (``cfcr:aws:Cluster``) and ``NodePool`` (``cfcr:aws:NodePool``).

One file per concern: ``network.py`` (VPC, subnets, NAT), ``security.py`` (security groups),
``nlb.py`` (API load balancer and names), ``identity.py`` (IAM roles and policies),
``secrets.py`` (Secrets Manager + KMS), ``control_plane.py`` (members and etcd volumes),
``node_pool.py`` (auto scaling groups), ``termination.py`` (drain queue), ``image.py``
(Ubuntu AMIs), ``launch.py`` (what every VM launches with), ``cluster.py`` (all of it).
"""

from cfcr.aws.cluster import Cluster, ClusterArgs
from cfcr.aws.node_pool import NodePool, NodePoolArgs

__all__ = ["Cluster", "ClusterArgs", "NodePool", "NodePoolArgs"]
