"""The machine images of a cluster, per architecture: ``cfcr:image.id`` when the spec pins one,
else the cloud's current Ubuntu LTS image, looked up once per architecture. Each cloud package
says how to look it up (``cfcr/<cloud>/image.py``)."""

from __future__ import annotations

from abc import ABC, abstractmethod

import pulumi

from cfcr.config import ClusterSpec


class MachineImages(ABC):
    """Image per architecture, looked up once each (a subclass gives :meth:`lookup`)."""

    def __init__(self, spec: ClusterSpec, parent: pulumi.Resource) -> None:
        self._spec = spec
        self._parent = parent
        self._cache: dict[str, pulumi.Output[str]] = {}

    @property
    def pinned(self) -> bool:
        """True when the spec names the image (``cfcr:image.id``)."""
        return self._spec.image.id is not None

    def image(self, architecture: str) -> pulumi.Output[str]:
        """The image for ``architecture``: ``cfcr:image.id`` if set, else the cloud's current one."""
        if self._spec.image.id is not None:
            return pulumi.Output.from_input(self._spec.image.id)
        if architecture not in self._cache:
            self._cache[architecture] = self.lookup(self._spec.image.ubuntu_release, architecture,
                                                    pulumi.InvokeOutputOptions(parent=self._parent))
        return self._cache[architecture]

    @abstractmethod
    def lookup(self, release: str, architecture: str, opts: pulumi.InvokeOutputOptions) -> pulumi.Output[str]:
        """The cloud's current image of Ubuntu ``release`` for ``architecture``."""
