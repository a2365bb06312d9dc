"""Filesystem paths on cfcr nodes, shared by every renderer in :mod:`cfcr.node`.

These are the kubeadm defaults wherever kubeadm has one, so that kubeadm phases,
``kubeadm certs renew`` and the upstream docs all agree with what cfcr writes.
"""

from __future__ import annotations

from typing import Final

#: kubeadm's certificate directory (``ca.crt``, ``apiserver.crt``, ``etcd/…``).
PKI_DIR: Final = "/etc/kubernetes/pki"
#: The cluster CA that signs, alone: ``ca.crt`` holds every trusted generation during a CA
#: rotation, and kube-controller-manager's CSR signer reads exactly one certificate. The node
#: writes the first certificate of ``ca.crt`` here (lib.sh ``write_signing_ca``).
SIGNING_CA_PATH: Final = f"{PKI_DIR}/ca-signing.crt"
#: etcd's certificates inside :data:`PKI_DIR` (kubeadm's layout).
ETCD_PKI_DIR: Final = f"{PKI_DIR}/etcd"
#: The kubelet's static Pod directory.
MANIFESTS_DIR: Final = "/etc/kubernetes/manifests"
#: The kubeadm configuration (v1beta4) written by the boot script.
KUBEADM_CONFIG_PATH: Final = "/etc/kubernetes/kubeadm.yaml"

#: Directory holding the audit policy; mounted read-only into the API server.
AUDIT_DIR: Final = "/etc/kubernetes/audit"
AUDIT_POLICY_PATH: Final = f"{AUDIT_DIR}/policy.yaml"
#: Directory of the API server's audit log; mounted read-write into the API server.
AUDIT_LOG_DIR: Final = "/var/log/kubernetes/audit"
AUDIT_LOG_PATH: Final = f"{AUDIT_LOG_DIR}/audit.log"

#: Directory of the encryption-at-rest configuration (holds a key: mode 0700).
ENCRYPTION_DIR: Final = "/etc/kubernetes/encryption"
ENCRYPTION_CONFIG_PATH: Final = f"{ENCRYPTION_DIR}/config.yaml"

#: Directory of the API server's AdmissionConfiguration.
ADMISSION_DIR: Final = "/etc/kubernetes/admission"
ADMISSION_CONFIG_PATH: Final = f"{ADMISSION_DIR}/config.yaml"

#: etcd's data directory; the boot script mounts the member's own persistent disk here.
ETCD_DATA_DIR: Final = "/var/lib/etcd"

#: A worker's copy of the cluster CA certificate (for its discovery pin), outside kubeadm's
#: directory: ``kubeadm join`` refuses to run when ``/etc/kubernetes/pki/ca.crt`` exists, and
#: writes that file itself from the discovery it verified against the pin.
JOIN_CA_PATH: Final = "/etc/cfcr/pki/ca.crt"
#: Secrets fetched from the cloud's secret store at boot (mode 0700, never in user-data).
SECRETS_DIR: Final = "/etc/cfcr/secrets"
