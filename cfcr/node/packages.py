"""Pinned node binaries (containerd, runc, CNI plugins, crictl, kubelet/kubeadm/kubectl)
and their systemd units.

Every download is verified before use: against the digest pinned in the channel data
(``sha256sum -c`` / ``sha512sum -c``) or, where the channel pins none, against the
publisher's checksum file next to the artifact (https, the artifact's own origin). The
rendered ``artifacts.list`` says which, in a comment above each artifact, and so does the
boot log, per file.

Binary mirrors: every download URL (checksum files included) goes through the spec's
mirror mapping (:class:`cfcr.mirrors.Mirrors`: ``cfcr:mirrors.files``, or the ``dl.k8s.io`` /
``github.com`` keys of ``cfcr:registryMirrors``). A mirror must serve byte-identical files:
the pinned digests are checked all the same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cfcr.channels import Release
from cfcr.mirrors import Mirrors
from cfcr.node.paths import KUBELET_DIR, KUBERNETES_DIR

MirrorsLike = Mirrors | Mapping[str, Sequence[str]]
"""The spec's :class:`~cfcr.mirrors.Mirrors`, or (as before) a bare ``cfcr:registryMirrors`` mapping."""

BIN_DIR = "/usr/local/bin"
KUBELET_BIN = f"{BIN_DIR}/kubelet"
ARTIFACTS_LIST_PATH = "/etc/cfcr/artifacts.list"
KUBELET_UNIT_PATH = "/etc/systemd/system/kubelet.service"
KUBELET_DROPIN_PATH = "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf"
CONTAINERD_UNIT_PATH = "/etc/systemd/system/containerd.service"
CRICTL_CONFIG_PATH = "/etc/crictl.yaml"

APT_PACKAGES: tuple[str, ...] = ("conntrack", "socat", "ethtool", "iptables", "curl", "openssl", "jq")
"""Distribution packages kubeadm's preflight and the boot scripts use (not version-pinned:
they come from the image's own archive and are not Kubernetes components)."""


@dataclass(frozen=True)
class Download:
    """One artifact the node downloads, verifies and installs."""

    name: str
    """Artifact name: kubernetes, containerd, runc, cni_plugins or crictl."""
    version: str
    """Upstream version (without ``v``)."""
    url: str
    """Download URL (mirror applied)."""
    algorithm: str
    """``sha256`` or ``sha512``."""
    digest: str | None
    """Pinned hex digest, or None: verify against ``checksum_url``."""
    checksum_url: str | None
    """Publisher checksum file (only when ``digest`` is None)."""

    @property
    def pinned(self) -> bool:
        """True when cfcr's channel data pins the digest; False when the node fetches it."""
        return self.digest is not None

    def verification(self) -> str:
        """How the node verifies this download, in one sentence (what the render shows)."""
        if self.pinned:
            return f"{self.name} {self.version}: {self.algorithm} pinned by cfcr"
        return (f"{self.name} {self.version}: not pinned by cfcr; {self.algorithm} read from the "
                f"publisher's file {self.checksum_url}")

    def line(self) -> str:
        """One ``artifacts.list`` line: ``name|version|url|algorithm|digest-or--|checksum-url-or--``."""
        return "|".join([self.name, self.version, self.url, self.algorithm,
                         self.digest or "-", self.checksum_url or "-"])


def mirror_url(url: str, mirrors: MirrorsLike) -> str:
    """``url`` as the node fetches it, through the file mirror (:meth:`cfcr.mirrors.Mirrors.file_url`)."""
    return Mirrors.coerce(mirrors).file_url(url)


def downloads(release: Release, arch: str, mirrors: MirrorsLike) -> list[Download]:
    """Every artifact of ``release`` for ``arch``, in install order."""
    out: list[Download] = []
    k = release.kubernetes
    sums = [("kubernetes", k.version, k.url(arch), k.checksum(arch))]
    for name in ("containerd", "runc", "cni_plugins", "crictl"):
        art = release.component(name)
        sums.append((name, art.version, art.url(arch), art.checksum(arch)))
    for name, version, url, checksum in sums:
        out.append(Download(
            name=name,
            version=version,
            url=mirror_url(url, mirrors),
            algorithm=checksum.algorithm,
            digest=checksum.value,
            checksum_url=None if checksum.file_url is None else mirror_url(checksum.file_url, mirrors),
        ))
    return out


def artifacts_list(items: Sequence[Download]) -> str:
    """``/etc/cfcr/artifacts.list`` read by the boot script (which skips ``#`` lines).

    Each artifact line follows a comment saying how its digest is established: pinned
    in cfcr's channel data, or read at boot from the publisher's checksum file."""
    header = "# name|version|url|algorithm|digest ('-': use the publisher's file)|checksum file url\n"
    return header + "".join(f"# {d.verification()}\n{d.line()}\n" for d in items)


def containerd_unit() -> str:
    """systemd unit of the containerd daemon."""
    return """[Unit]
Description=containerd container runtime (installed by cfcr)
Documentation=https://containerd.io
After=network.target local-fs.target

[Service]
ExecStartPre=-/sbin/modprobe overlay
ExecStart=/usr/local/bin/containerd
Type=notify
Delegate=yes
KillMode=process
Restart=always
RestartSec=5
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
OOMScoreAdjust=-999

[Install]
WantedBy=multi-user.target
"""


def kubelet_unit() -> str:
    """systemd unit of the kubelet (flags come from the kubeadm drop-in)."""
    return f"""[Unit]
Description=kubelet: the Kubernetes node agent (installed by cfcr)
Documentation=https://kubernetes.io/docs/
Wants=network-online.target containerd.service
After=network-online.target containerd.service

[Service]
ExecStart={KUBELET_BIN}
Restart=always
RestartSec=10
StartLimitInterval=0

[Install]
WantedBy=multi-user.target
"""


def kubelet_dropin() -> str:
    """kubeadm's drop-in semantics: bootstrap/kubeconfig, the config file kubeadm writes,
    and ``KUBELET_KUBEADM_ARGS`` from ``/var/lib/kubelet/kubeadm-flags.env``."""
    return f"""[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig={KUBERNETES_DIR}/bootstrap-kubelet.conf --kubeconfig={KUBERNETES_DIR}/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config={KUBELET_DIR}/config.yaml"
EnvironmentFile=-{KUBELET_DIR}/kubeadm-flags.env
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart={KUBELET_BIN} $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
"""


def crictl_yaml(cri_socket: str) -> str:
    """``/etc/crictl.yaml`` so that crictl (and the maintenance script) talk to containerd."""
    return f"runtime-endpoint: {cri_socket}\nimage-endpoint: {cri_socket}\ntimeout: 10\n"


def package_files(release: Release, arch: str, mirrors: MirrorsLike, cri_socket: str) -> dict[str, tuple[str, str]]:
    """path -> (content, mode): the artifact list and the units (0600: CIS 4.1.1)."""
    return {
        ARTIFACTS_LIST_PATH: (artifacts_list(downloads(release, arch, mirrors)), "0644"),
        CONTAINERD_UNIT_PATH: (containerd_unit(), "0644"),
        KUBELET_UNIT_PATH: (kubelet_unit(), "0600"),
        KUBELET_DROPIN_PATH: (kubelet_dropin(), "0600"),
        CRICTL_CONFIG_PATH: (crictl_yaml(cri_socket), "0644"),
    }
