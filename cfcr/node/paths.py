"""Filesystem paths on cfcr nodes, shared by every renderer in :mod:`cfcr.node`.

These are the kubeadm defaults wherever kubeadm has one, so that kubeadm phases,
``kubeadm certs renew`` and the upstream docs all agree with what cfcr writes.

They are written here once: the node scripts (``cfcr/node/scripts``) receive every one they use
as a ``CFCR_*`` variable of ``node.env`` (:func:`cfcr.node.userdata.node_env`), except the two
that find ``lib.sh`` and ``node.env`` themselves (:data:`LIB_SCRIPT_PATH`, :data:`CFCR_ETC_DIR`),
which the scripts spell out; tests/test_node_scripts.py holds both sides to that.
"""

from __future__ import annotations

from typing import Final

#: cfcr's own configuration on the node (``node.env``, ``secrets.sh``, the cloud's hooks).
CFCR_ETC_DIR: Final = "/etc/cfcr"
#: The role's facts, sourced by every node script through lib.sh ``load_node_facts``: every
#: other path a script needs reaches it here, as a ``CFCR_*`` variable
#: (:func:`cfcr.node.userdata.node_env`). lib.sh finds it at ``$CFCR_ETC/node.env``, a literal.
NODE_ENV_PATH: Final = f"{CFCR_ETC_DIR}/node.env"
#: Where cfcr writes its systemd units.
SYSTEMD_DIR: Final = "/etc/systemd/system"
#: cfcr's node scripts (``bootstrap.sh``, ``maintain.sh``, ``member.sh``, ...).
LIB_DIR: Final = "/usr/local/lib/cfcr"
#: The node scripts' shell library, which every script sources by this literal path (it is
#: what loads ``node.env``, so no variable can name it).
LIB_SCRIPT_PATH: Final = f"{LIB_DIR}/lib.sh"

#: kubeadm's directory: its kubeconfigs (``admin.conf``, ``kubelet.conf``, ...) and the
#: directories below.
KUBERNETES_DIR: Final = "/etc/kubernetes"
#: The kubelet's directory (``config.yaml``, ``kubeadm-flags.env``, ``pki/``), kubeadm's layout.
KUBELET_DIR: Final = "/var/lib/kubelet"

#: runc, which containerd's CRI runtime runs (its ``BinaryName``); the boot installs it here.
RUNC_PATH: Final = "/usr/local/sbin/runc"

#: kubeadm's certificate directory (``ca.crt``, ``apiserver.crt``, ``etcd/…``).
PKI_DIR: Final = f"{KUBERNETES_DIR}/pki"
#: The cluster CA that signs, alone: ``ca.crt`` holds every trusted generation during a CA
#: rotation, and kube-controller-manager's CSR signer reads exactly one certificate. The node
#: writes the first certificate of ``ca.crt`` here (lib.sh ``write_signing_ca``).
SIGNING_CA_PATH: Final = f"{PKI_DIR}/ca-signing.crt"
#: etcd's certificates inside :data:`PKI_DIR` (kubeadm's layout).
ETCD_PKI_DIR: Final = f"{PKI_DIR}/etcd"
#: The kubelet's static Pod directory.
MANIFESTS_DIR: Final = f"{KUBERNETES_DIR}/manifests"
#: The kubeadm configuration (v1beta4) written by the boot script.
KUBEADM_CONFIG_PATH: Final = f"{KUBERNETES_DIR}/kubeadm.yaml"

#: Directory holding the audit policy; mounted read-only into the API server.
AUDIT_DIR: Final = f"{KUBERNETES_DIR}/audit"
AUDIT_POLICY_PATH: Final = f"{AUDIT_DIR}/policy.yaml"
#: Directory of the API server's audit log; mounted read-write into the API server.
AUDIT_LOG_DIR: Final = "/var/log/kubernetes/audit"
AUDIT_LOG_PATH: Final = f"{AUDIT_LOG_DIR}/audit.log"

#: Directory of the encryption-at-rest configuration (holds a key: mode 0700).
ENCRYPTION_DIR: Final = f"{KUBERNETES_DIR}/encryption"
ENCRYPTION_CONFIG_PATH: Final = f"{ENCRYPTION_DIR}/config.yaml"

#: Directory of the API server's AdmissionConfiguration.
ADMISSION_DIR: Final = f"{KUBERNETES_DIR}/admission"
ADMISSION_CONFIG_PATH: Final = f"{ADMISSION_DIR}/config.yaml"

#: etcd's data directory; the boot script mounts the member's own persistent disk here.
ETCD_DATA_DIR: Final = "/var/lib/etcd"

#: cfcr's own state on the node (boot markers, rendered inputs).
CFCR_STATE_DIR: Final = "/var/lib/cfcr"
#: A worker's copy of the cluster CA certificate (for its discovery pin), outside kubeadm's
#: directory: ``kubeadm join`` refuses to run when ``/etc/kubernetes/pki/ca.crt`` exists, and
#: writes that file itself from the discovery it verified against the pin.
JOIN_CA_PATH: Final = f"{CFCR_ETC_DIR}/pki/ca.crt"
#: Secrets fetched from the cloud's secret store at boot (mode 0700, never in user-data).
SECRETS_DIR: Final = f"{CFCR_ETC_DIR}/secrets"
