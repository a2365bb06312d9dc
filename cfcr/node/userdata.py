"""cloud-init user-data per role: files, units and ONE idempotent boot script.

``render_user_data`` returns the exact bytes a VM (or a pool's template) receives: a
``#cloud-config`` document, gzip-compressed when it would not fit the cloud's limit
uncompressed (cloud-init detects gzip by its magic bytes). The document holds
configuration, scripts and secret *ids* -- never key material or tokens.
"""

from __future__ import annotations

import gzip
import re
import shlex
from collections.abc import Mapping
from importlib import resources
from typing import Any

import yaml

from cfcr.channels import Release
from cfcr.config import ClusterSpec
from cfcr.mirrors import Mirrors
from cfcr.node.backup import BACKUP_HOOK_PATH, BACKUP_TIMER, backup_files
from cfcr.node.containerd import CRI_SOCKET, containerd_files
from cfcr.node.context import (
    NodeContext,
    NodeHook,
    Role,
    UserDataLimit,
    join_access,
    machine_id_command,
    members_use_local_api,
    provider_id_command,
)
from cfcr.node.host import MODULES_LOAD_PATH, host_files
from cfcr.node.metadata_guard import guard_files
from cfcr.node.kubeadm import (
    AUTHN_CONFIG_PATH,
    BOOTSTRAP_TOKEN_MIN_LEFT_SECONDS,
    BOOTSTRAP_TOKEN_TTL_SECONDS,
    LEGACY_BOOTSTRAP_TOKEN_TTL_SECONDS,
    RETRY_IGNORED_PREFLIGHT,
    authentication_config,
    dump_documents,
    kubeadm_documents,
    uses_authentication_config,
)
from cfcr.node.packages import APT_PACKAGES, ARTIFACTS_LIST_PATH, BIN_DIR, package_files
from cfcr.node.paths import (
    ADMISSION_CONFIG_PATH,
    CFCR_ETC_DIR,
    SYSTEMD_DIR,
    CFCR_STATE_DIR,
    ETCD_PKI_DIR,
    JOIN_CA_PATH,
    KUBELET_DIR,
    KUBERNETES_DIR,
    LIB_DIR,
    NODE_ENV_PATH,
    PKI_DIR,
    RUNC_PATH,
    SIGNING_CA_PATH,
    AUDIT_POLICY_PATH,
    ENCRYPTION_CONFIG_PATH,
    ETCD_DATA_DIR,
    KUBEADM_CONFIG_PATH,
    MANIFESTS_DIR,
)
from cfcr.node.secrets import (
    BOOTSTRAP_TOKEN_FILE,
    BOOTSTRAP_TOKEN_KEY,
    ENCRYPTION_KEY_FILE,
    render_secrets_script,
    secret_files_for,
)

BOOTSTRAP_SCRIPT = f"{LIB_DIR}/bootstrap.sh"
MEMBER_SCRIPT = f"{LIB_DIR}/member.sh"
"""The control-plane member model (etcd membership, stale Node, readiness report), sourced by
bootstrap.sh. It, maintain.sh and join-credentials.sh travel through the secret store
(cfcr/node/delivered.py), not in user-data."""
SECRETS_SCRIPT_PATH = f"{CFCR_ETC_DIR}/secrets.sh"
IDENTITY_SCRIPT_PATH = f"{CFCR_ETC_DIR}/identity.sh"
JOIN_ACCESS_SCRIPT_PATH = f"{CFCR_ETC_DIR}/join-access.sh"
KUBEADM_TEMPLATE_PATH = f"{CFCR_ETC_DIR}/kubeadm.yaml.tmpl"
ENCRYPTION_TEMPLATE_PATH = f"{CFCR_ETC_DIR}/encryption.yaml.tmpl"



_SafeDumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
"""libyaml's emitter where PyYAML has it: the same text as the pure-Python one (the golden render
checks), about 15 times faster, which was a fifth of a render (benchmarks/README.md)."""


class _LiteralDumper(_SafeDumper):  # type: ignore[valid-type,misc]
    """Multi-line strings as ``|`` blocks, so a rendered user-data reads like the files."""


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_LiteralDumper.add_representer(str, _str_representer)


class UserDataTooLargeError(ValueError):
    """A role's user-data does not fit the cloud's limit, even compressed."""


def roles_for(spec: ClusterSpec) -> list[Role]:
    """Every user-data variant of the cluster: one per control-plane member, one per pool."""
    return [Role.control_plane(i) for i in range(spec.control_plane.count)] + [
        Role.worker(p.name) for p in spec.node_pools
    ]


_HEREDOC = re.compile(r"<<-?\s*'?([A-Za-z_]+)'?")


def strip_comments(script: str) -> str:
    """A node script as it travels in user-data: without its comment lines and blank lines
    (AWS takes 16 KB of user-data, gzip included; the commented source is in
    ``cfcr/node/scripts``). Kept: the shebang, ``# shellcheck`` directives, and every line of a
    here-document."""
    out: list[str] = []
    heredoc: str | None = None
    for number, line in enumerate(script.splitlines()):
        if heredoc is not None:
            out.append(line)
            if line.strip() == heredoc:
                heredoc = None
            continue
        bare = line.strip()
        if (number == 0 and line.startswith("#!")) or bare.startswith("# shellcheck"):
            out.append(line)
            continue
        if not bare or bare.startswith("#"):
            continue
        match = _HEREDOC.search(line)
        if match:
            heredoc = match.group(1)
        out.append(line)
    return "\n".join(out) + "\n"


def _script(name: str) -> str:
    return strip_comments(resources.files("cfcr.node").joinpath("scripts", name).read_text("utf-8"))


def _yaml(doc: Mapping[str, Any]) -> str:
    return yaml.dump(dict(doc), Dumper=_SafeDumper, sort_keys=False, default_flow_style=False)


def node_path_variables() -> dict[str, str]:
    """The node paths every role's scripts read, as ``CFCR_*`` variables (node.env), from the one
    place each is defined (:mod:`cfcr.node.paths` and the renderers' constants)."""
    return {
        "CFCR_STATE": CFCR_STATE_DIR,
        "CFCR_SECRETS_SCRIPT": SECRETS_SCRIPT_PATH,
        "CFCR_IDENTITY_SCRIPT": IDENTITY_SCRIPT_PATH,
        "CFCR_JOIN_ACCESS_SCRIPT": JOIN_ACCESS_SCRIPT_PATH,
        "CFCR_ARTIFACTS_LIST": ARTIFACTS_LIST_PATH,
        "CFCR_MODULES_LOAD": MODULES_LOAD_PATH,
        "CFCR_BIN_DIR": BIN_DIR,
        "CFCR_RUNC": RUNC_PATH,
        "CFCR_KUBERNETES_DIR": KUBERNETES_DIR,
        "CFCR_KUBELET_DIR": KUBELET_DIR,
        "CFCR_PKI_DIR": PKI_DIR,
        "CFCR_ETCD_DATA_DIR": ETCD_DATA_DIR,
        "CFCR_KUBEADM_TEMPLATE": KUBEADM_TEMPLATE_PATH,
        "CFCR_KUBEADM_CONFIG": KUBEADM_CONFIG_PATH,
        "CFCR_ENCRYPTION_TEMPLATE": ENCRYPTION_TEMPLATE_PATH,
        "CFCR_ENCRYPTION_CONFIG": ENCRYPTION_CONFIG_PATH,
    }


def control_plane_path_variables() -> dict[str, str]:
    """The control plane's own paths (member.sh, maintain.sh, etcd-backup.sh), as ``CFCR_*`` variables."""
    return {
        "CFCR_ETCD_PKI_DIR": ETCD_PKI_DIR,
        "CFCR_MANIFESTS_DIR": MANIFESTS_DIR,
        "CFCR_LIB_DIR": LIB_DIR,
        "CFCR_BACKUP_HOOK": BACKUP_HOOK_PATH,
        "CFCR_BACKUP_TIMER_FILE": f"{SYSTEMD_DIR}/{BACKUP_TIMER}",
    }


def path_defaults() -> str:
    """Shell that sets every node path variable that is still unset (``: "${CFCR_X:=path}"``).

    The control plane's scripts travel through the secret store and reach a running member
    with the daily maintenance, before the member is replaced with a new user-data: each
    carries these defaults (:func:`cfcr.node.delivered.script_text`), so a script that reads a
    path variable its member's older node.env lacks still runs. node.env, sourced after them,
    sets the same values."""
    variables = {**node_path_variables(), **control_plane_path_variables(), "CFCR_SIGNING_CA": SIGNING_CA_PATH}
    unsafe = {name: value for name, value in variables.items() if not re.fullmatch(r"[A-Za-z0-9_./-]+", value)}
    assert not unsafe, f"node paths must be plain: {unsafe}"
    return "\n".join(f': "${{{name}:={value}}}"' for name, value in variables.items()) + "\n"


def node_env(spec: ClusterSpec, release: Release, ctx: NodeContext, role: Role, arch: str,
             *, rotates: bool = False) -> str:
    """``/etc/cfcr/node.env``: the role's facts for the boot and maintenance scripts
    (``rotates``: the control plane rotates the join token and revokes joined workers).

    Every path a script needs that Python defines (:mod:`cfcr.node.paths` and the renderers'
    constants) reaches the scripts here, as a ``CFCR_*`` variable, so it is written once; the
    scripts keep literal only the path that finds lib.sh and this file
    (:data:`~cfcr.node.paths.LIB_SCRIPT_PATH`, :data:`~cfcr.node.paths.CFCR_ETC_DIR`)."""
    key_usage = "digitalSignature" if spec.pki.key_algorithm == "ECDSA" else "digitalSignature, keyEncipherment"
    values: dict[str, str] = {
        "CFCR_ROLE": role.kind,
        "CFCR_NODE_NAME": role.member(ctx).kubelet_name if role.is_control_plane else "",
        "CFCR_MEMBER": role.member(ctx).name if role.is_control_plane else "",
        "CFCR_POOL": role.pool or "",
        "CFCR_CLUSTER": spec.name or "",
        "CFCR_ARCH": arch,
        "CFCR_KUBERNETES_VERSION": release.kubernetes.version,
        "CFCR_ETCD_DEVICE": ctx.etcd_disk_device if role.is_control_plane else "",
        **node_path_variables(),
        "CFCR_RETRY_PREFLIGHT": ",".join(RETRY_IGNORED_PREFLIGHT[role.kind]),
        "CFCR_JOIN_ROTATION": "1" if rotates else "",
        "CFCR_TOKEN_TTL": str(BOOTSTRAP_TOKEN_TTL_SECONDS),
        "CFCR_TOKEN_MIN_LEFT": str(BOOTSTRAP_TOKEN_MIN_LEFT_SECONDS),
        "CFCR_TOKEN_FILE": BOOTSTRAP_TOKEN_FILE,
        "CFCR_CA_CERT": f"{PKI_DIR}/ca.crt" if role.is_control_plane else JOIN_CA_PATH,
        "CFCR_ENCRYPTION_KEY_FILE": ENCRYPTION_KEY_FILE,
        "CFCR_RENEW_BEFORE_DAYS": str(max(1, spec.pki.early_renewal_hours // 24)),
        "CFCR_LEAF_DAYS": str(max(1, spec.pki.leaf_validity_hours // 24)),
        "CFCR_LEAF_KEY_USAGE": key_usage,
    }
    if role.is_control_plane:
        from cfcr.node.etcd import initial_cluster, member_client_url, member_peer_url

        me = role.member(ctx)
        values.update({  # the member model (member.sh): this member and the rendered membership
            "CFCR_ETCD_PEER_URL": member_peer_url(me),
            "CFCR_ETCD_CLIENT_URL": member_client_url(me),
            "CFCR_ETCD_CLIENT_URLS": ",".join(member_client_url(m) for m in ctx.control_plane_members),
            "CFCR_ETCD_INITIAL_CLUSTER": initial_cluster(ctx.control_plane_members),
            "CFCR_API_SERVER": ctx.api_server_url,
            "CFCR_API_PORT": str(ctx.api_port),
            "CFCR_SIGNING_CA": SIGNING_CA_PATH,
        })
        values.update(control_plane_path_variables())
    lines = ["# Generated by cfcr: facts about this node's role (no secrets).",
             "# shellcheck disable=SC2034"]
    lines += [f"{k}={shlex.quote(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


def join_access_script(revoke: str, candidate: str) -> str:
    """``/etc/cfcr/join-access.sh``: sourced by the control plane's scripts. Defines, through the
    cloud hook, ``cfcr_revoke_join_access`` (provider IDs of joined workers on stdin) and
    ``cfcr_join_candidate NAME`` (is NAME a pool VM still joining? then its creation time)."""
    lines = ["#!/bin/bash", "# Generated by cfcr: the control plane's view of joining VMs, through the cloud."]
    for function, body in (("cfcr_revoke_join_access", revoke), ("cfcr_join_candidate", candidate)):
        lines += [f"{function}() {{", *[f"  {line}" if line else "" for line in body.strip("\n").splitlines()], "}", ""]
    return "\n".join(lines)


def identity_script(body: str, machine: str | None = None) -> str:
    """``/etc/cfcr/identity.sh``: sourced by the boot and maintenance scripts. Defines
    ``cfcr_provider_id`` (the instance's provider ID on stdout, via the cloud hook) and, where
    the hook has one (:class:`~cfcr.node.context.MachineId`), ``cfcr_machine_id``."""
    lines = [
        "#!/bin/bash",
        "# Generated by cfcr: how this node reads its cloud provider ID (no secrets).",
        "cfcr_provider_id() {",
        *[f"  {line}" if line else "" for line in body.strip("\n").splitlines()],
        "}",
        "",
    ]
    if machine is not None:
        lines += ["cfcr_machine_id() {", *[f"  {line}" if line else "" for line in machine.strip("\n").splitlines()],
                  "}", ""]
    return "\n".join(lines)


def _join_units() -> dict[str, tuple[str, str]]:
    """The control plane's join-credentials timer (token rotation, revoking joined workers)."""
    return {
        f"{SYSTEMD_DIR}/cfcr-join-credentials.service": (f"""[Unit]
Description=cfcr join credentials: rotate the join token, revoke joined workers' join identity
Wants=network-online.target
After=network-online.target kubelet.service

[Service]
Type=oneshot
ExecStart={LIB_DIR}/join-credentials.sh
""", "0644"),
        f"{SYSTEMD_DIR}/cfcr-join-credentials.timer": ("""[Unit]
Description=cfcr join credentials every two minutes

[Timer]
OnBootSec=2min
OnUnitActiveSec=2min
RandomizedDelaySec=30s

[Install]
WantedBy=timers.target
""", "0644"),
    }


def _units(role: Role) -> dict[str, tuple[str, str]]:
    units = {
        f"{SYSTEMD_DIR}/cfcr-bootstrap.service": (f"""[Unit]
Description=cfcr node bootstrap (idempotent; re-checks the host on every boot)
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
ExecStart={BOOTSTRAP_SCRIPT}
RemainAfterExit=yes
TimeoutStartSec=0

[Install]
WantedBy=multi-user.target
""", "0644"),
    }
    if role.is_control_plane:
        units[f"{SYSTEMD_DIR}/cfcr-maintain.service"] = (f"""[Unit]
Description=cfcr control-plane maintenance: certificates and bootstrap token
Wants=network-online.target
After=network-online.target kubelet.service

[Service]
Type=oneshot
ExecStart={LIB_DIR}/maintain.sh
""", "0644")
        # started by bootstrap.sh once kubeadm is done; retried until the member has reported
        units[f"{SYSTEMD_DIR}/cfcr-member-ready.service"] = (f"""[Unit]
Description=cfcr member ready: a healthy etcd voter, recorded for pulumi up's rollout gate
After=kubelet.service

[Service]
Type=simple
ExecStart=/bin/bash -c '. {LIB_DIR}/lib.sh && load_node_facts && . {MEMBER_SCRIPT} && member_ready'
Restart=on-failure
RestartSec=30s
""", "0644")
        units[f"{SYSTEMD_DIR}/cfcr-maintain.timer"] = ("""[Unit]
Description=Daily cfcr control-plane maintenance

[Timer]
OnBootSec=15min
OnCalendar=daily
RandomizedDelaySec=1h
Persistent=true

[Install]
WantedBy=timers.target
""", "0644")
        units[f"{SYSTEMD_DIR}/kubelet.service.d/20-cfcr-etcd-disk.conf"] = (
            f"[Unit]\n# etcd must never start on an empty root-disk directory\nRequiresMountsFor={ETCD_DATA_DIR}\n",
            "0600",
        )
    return units


def node_files(spec: ClusterSpec, release: Release, ctx: NodeContext, role: Role,
               hook: NodeHook) -> dict[str, tuple[str, str]]:
    """Every file the role's user-data writes: path -> (content, octal mode)."""
    arch: str
    if role.is_control_plane:
        arch = spec.control_plane.architecture
    else:
        arch = role.node_pool(spec).architecture
    arch = ctx.architecture_override or arch

    from cfcr.node.admission import admission_config

    admission = admission_config(spec) if role.is_control_plane else None
    files: dict[str, tuple[str, str]] = {}
    files.update(host_files())
    files.update(guard_files(hook))  # pods kept from the metadata server (cfcr/node/metadata_guard.py)
    mirrors = Mirrors.of(spec)
    files.update(containerd_files(release, mirrors, release.registries, mirrors.image(release.pause_image)))
    files.update(package_files(release, arch, mirrors, CRI_SOCKET))
    files.update(_units(role))
    files[f"{LIB_DIR}/lib.sh"] = (_script("lib.sh"), "0644")
    files[BOOTSTRAP_SCRIPT] = (_script("bootstrap.sh"), "0700")
    access = join_access(hook)
    rotates = access is not None
    files[NODE_ENV_PATH] = (node_env(spec, release, ctx, role, arch, rotates=rotates), "0600")
    writable = {BOOTSTRAP_TOKEN_KEY: ctx.secret_ids[BOOTSTRAP_TOKEN_KEY]} if role.is_control_plane else {}
    files[SECRETS_SCRIPT_PATH] = (render_secrets_script(secret_files_for(role, ctx), hook, writable), "0600")
    provider_id = provider_id_command(hook)
    if provider_id is not None:
        files[IDENTITY_SCRIPT_PATH] = (identity_script(provider_id, machine_id_command(hook)), "0600")
    if role.is_control_plane and access is not None:
        files[JOIN_ACCESS_SCRIPT_PATH] = (join_access_script(access.revoke_command(), access.candidate_command()),
                                          "0600")
        files.update(_join_units())  # join-credentials.sh comes from the secret store (cfcr/node/delivered.py)
    docs = kubeadm_documents(spec, release, ctx, role, admission_configured=admission is not None,
                             provider_id=provider_id is not None,
                             token_seconds=BOOTSTRAP_TOKEN_TTL_SECONDS if rotates else LEGACY_BOOTSTRAP_TOKEN_TTL_SECONDS)
    files[KUBEADM_TEMPLATE_PATH] = (dump_documents(docs), "0600")
    if role.is_control_plane:
        from cfcr.node.audit import audit_policy
        from cfcr.node.encryption import encryption_config_template
        from cfcr.node.etcd import etcd_static_pod

        assert role.index is not None
        # maintain.sh and member.sh come from the secret store (cfcr/node/delivered.py)
        files[f"{MANIFESTS_DIR}/etcd.yaml"] = (
            _yaml(etcd_static_pod(spec, release, list(ctx.control_plane_members), role.index)), "0600")
        files[AUDIT_POLICY_PATH] = (_yaml(audit_policy()), "0600")
        files[ENCRYPTION_TEMPLATE_PATH] = (encryption_config_template(), "0600")
        if admission is not None:
            files[ADMISSION_CONFIG_PATH] = (_yaml(admission), "0600")
        if uses_authentication_config(spec):
            files[AUTHN_CONFIG_PATH] = (_yaml(authentication_config()), "0600")
    files.update(backup_files(spec, role, hook))  # etcd snapshots (cfcr/node/backup.py)
    return files


LOCAL_API_ADDRESS = "127.0.0.1"


def local_api_command(api_endpoint: str) -> list[str]:
    """The ``bootcmd`` entry that maps ``api_endpoint`` to this member's own API server in
    ``/etc/hosts`` (:class:`cfcr.node.context.LocalApiOnMembers`): idempotent, run on every boot,
    before cloud-init writes files and long before the kubelet starts."""
    line = f"{LOCAL_API_ADDRESS} {api_endpoint}"
    return ["sh", "-c", f"grep -qxF {shlex.quote(line)} /etc/hosts || echo {shlex.quote(line)} >> /etc/hosts"]


def cloud_config(spec: ClusterSpec, release: Release, ctx: NodeContext, role: Role,
                 hook: NodeHook) -> dict[str, Any]:
    """The ``#cloud-config`` document (as a mapping) of ``role``."""
    files = node_files(spec, release, ctx, role, hook)
    packages = list(dict.fromkeys([*APT_PACKAGES, *hook.packages()]))
    apt = Mirrors.of(spec).apt_config()
    trusted = spec.mirrors.certificates()
    time_servers = list(getattr(hook, "time_servers", ()))
    local_api = role.is_control_plane and members_use_local_api(hook)
    return {
        # the site's CAs before anything is fetched (cloud-init runs ca_certs before apt and runcmd)
        **({"ca_certs": {"trusted": trusted}} if trusted else {}),
        **({"ntp": {"enabled": True, "ntp_client": "chrony", "servers": time_servers}} if time_servers else {}),
        **({"apt": apt} if apt else {}),
        **({"manage_etc_hosts": False, "bootcmd": [local_api_command(ctx.api_endpoint)]} if local_api else {}),
        "package_update": True,
        "packages": packages,
        "write_files": [
            {"path": path, "owner": "root:root", "permissions": mode, "content": content}
            for path, (content, mode) in files.items()
        ],
        "runcmd": [
            ["systemctl", "daemon-reload"],
            ["systemctl", "enable", "cfcr-bootstrap.service"],
            [BOOTSTRAP_SCRIPT],
        ],
    }


def render_user_data(spec: ClusterSpec, release: Release, ctx: NodeContext, role: Role,
                     hook: NodeHook, limit: UserDataLimit | Mapping[str, int] | None = None) -> bytes:
    """The user-data bytes of ``role`` on ``spec.cloud``.

    Plain ``#cloud-config`` when it fits the cloud's limit (the hook's
    :attr:`~NodeHook.user_data_limit`, or ``limit``), else gzip where the cloud takes it.
    Raises :class:`UserDataTooLargeError` naming the role and the sizes when it cannot fit.
    """
    fit = getattr(hook, "user_data_limit", None)
    if isinstance(limit, Mapping):  # the former cloud_limits: {cloud: bytes}, for callers of one release ago
        fit = UserDataLimit(int(limit[spec.cloud]), fit.gzip if fit else True) if spec.cloud in limit else fit
    elif limit is not None:
        fit = limit
    if fit is None:
        raise TypeError(f"{type(hook).__name__} has no user_data_limit: a cfcr.node.NodeHook states its "
                        "cloud's user-data limit (cfcr.node.UserDataLimit)")
    limit_bytes = fit.max_bytes
    doc = cloud_config(spec, release, ctx, role, hook)
    plain = ("#cloud-config\n" + yaml.dump(doc, Dumper=_LiteralDumper, sort_keys=False,
                                            default_flow_style=False, width=4096)).encode()
    if len(plain) <= limit_bytes:
        return plain
    if not fit.gzip:
        raise UserDataTooLargeError(
            f"{role.slug}: user-data is {len(plain)} bytes, over the {spec.cloud} limit of {limit_bytes} "
            "bytes, and metadata values cannot carry gzip"
        )
    packed = gzip.compress(plain, compresslevel=9, mtime=0)
    if len(packed) > limit_bytes:
        raise UserDataTooLargeError(
            f"{role.slug}: user-data is {len(plain)} bytes ({len(packed)} gzipped), over the "
            f"{spec.cloud} limit of {limit_bytes} bytes"
        )
    return packed
