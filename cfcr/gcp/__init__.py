"""GCP: the cloud package (``contract.py`` is its side of :mod:`cfcr.clouds`'s contract).

Today it builds the cluster's bootstrap alone: the node hook (``node_hook.py``), the addon
profile (``addon_profile.py``) and the contract; its ``Cluster`` and ``NodePool`` components
come with the cloud's own issue.
"""
