"""Azure: the cloud package (``contract.py`` is its side of :mod:`cfcr.clouds`'s contract).

Today it builds the cluster's bootstrap alone: the node hook (``node_hook.py``), the addon
profile (``addon_profile.py``) and the contract; the identities (``identity.py``) and the Key
Vault secret delivery (``secrets.py``) are ready for its ``Cluster``; ``Cluster`` and
``NodePool`` come with the cloud's own issue.
"""
