"""Assets: what a cluster of a stack fetches, from where, and through which mirror.

* :mod:`cfcr.assets.refs`: what a render fetches, read back from its files;
* :mod:`cfcr.assets.listing`: the asset list of a stack (``python -m cfcr assets``);
* :mod:`cfcr.assets.check`: the air-gap check: the stack's render names no public origin
  outside the mirror mapping and fetches exactly its asset list.
"""

from cfcr.assets.listing import Asset, AssetList, stack_assets

__all__ = ["Asset", "AssetList", "stack_assets"]
