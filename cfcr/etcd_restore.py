"""``python -m cfcr etcd-restore``: restore an etcd snapshot into a stack's control plane, as a
procedure the program writes out for that stack (docs/backups.md, "Restore").

A restore replaces the whole cluster state with the snapshot's, on every member at once (etcd's
documented procedure for restoring a cluster): each member stops its API server and etcd,
restores the same snapshot into a fresh data directory under its own name, peer URL and the
rendered initial cluster (``etcdutl snapshot restore``), and only when every member has done so
do they start etcd again, then the API servers. The members, their addresses and etcd flags
come from the stack's own render (``cfcr.node.etcd``), so the restored cluster is exactly the
one the nodes' manifests describe; the cluster token is the rendered one. The restore bumps the
revision by :data:`BUMP_REVISION` and marks it compacted, so every watcher (API server caches,
controllers, kubelets) relists instead of trusting a revision the snapshot rewound.

It works into the *same stack*: a control plane rebuilt by ``pulumi up`` (members replaced,
etcd disks lost) or a cluster to roll back. The snapshot's Secrets are encrypted with the
stack's encryption key and its tokens signed by the stack's keys, which live in its Pulumi
state: a stack created afresh has other keys, and a snapshot restored there serves Secrets
its API server cannot decrypt.

Pure functions; the cloud's part (where snapshots are, a download URL, how a command reaches a
node) comes from the cloud package (``cfcr.aws.backups``).
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cfcr import channels, clouds
from cfcr.config import ClusterSpec
from cfcr.clouds import RestoreCommands
from cfcr.config.topology import control_plane_members
from cfcr.node.etcd import CLIENT_PORT, etcd_flag_map
from cfcr.mirrors import Mirrors
from cfcr.node.paths import ETCD_DATA_DIR, ETCD_PKI_DIR, MANIFESTS_DIR
from cfcr.config.topology import ControlPlaneMember

BUMP_REVISION = 1_000_000_000
"""Revisions added on restore (etcd's recommendation for Kubernetes: far more than the writes
between the snapshot and the restore)."""
WORK_DIR = "/var/lib/cfcr/restore"
"""Where a member keeps the snapshot and etcdutl during a restore."""
PARKED_DIR = "/etc/kubernetes/manifests.cfcr-restore"
"""Where a member's API server and etcd manifests wait while it restores (the kubelet stops them)."""
RESTORE_DIR_NAME = ".cfcr-restore"
"""The restored data is written beside the old one, on the same disk, then swapped in."""


class RestoreError(ValueError):
    """The stack cannot be restored as asked (another cloud, a member that does not exist)."""


@dataclass(frozen=True)
class MemberPlan:
    """What one member restores as."""

    index: int
    name: str
    address: str
    flags: dict[str, str]
    """The member's rendered etcd flags."""


def member_plans(spec: ClusterSpec, members: Sequence[ControlPlaneMember] | None = None) -> list[MemberPlan]:
    """Every control-plane member with its rendered etcd flags, in member order (``members``:
    the topology's, unless given)."""
    release = channels.resolve(spec.kubernetes.version)
    members = list(members) if members is not None else control_plane_members(spec)
    version = tuple(int(p) for p in release.etcd_version.split(".")[:2])
    return [MemberPlan(i, m.name, m.address, etcd_flag_map(spec, members, i, (version[0], version[1])))
            for i, m in enumerate(members)]


def restore_args(plan: MemberPlan, snapshot: str, data_dir: str) -> list[str]:
    """``etcdutl`` arguments that restore ``snapshot`` into ``data_dir`` (which must not exist)
    as ``plan``'s member: its name, peer URL, the rendered initial cluster and token."""
    flags = plan.flags
    return [
        "snapshot", "restore", snapshot,
        "--name", flags["name"],
        "--initial-cluster", flags["initial-cluster"],
        "--initial-cluster-token", flags["initial-cluster-token"],
        "--initial-advertise-peer-urls", flags["initial-advertise-peer-urls"],
        "--data-dir", data_dir,
        "--bump-revision", str(BUMP_REVISION),
        "--mark-compacted",
    ]


def etcdutl_download(spec: ClusterSpec) -> tuple[str, str, str]:
    """(tarball URL, SHA256SUMS URL, member path of etcdutl in it) of the channel's etcd
    release for the control plane's architecture, through the file mirror when set (:mod:`cfcr.mirrors`)."""
    release = channels.resolve(spec.kubernetes.version)
    version, arch = release.etcd_version, spec.control_plane.architecture
    base = f"https://github.com/etcd-io/etcd/releases/download/v{version}"
    stem = f"etcd-v{version}-linux-{arch}"
    mirrors = Mirrors.of(spec)
    return mirrors.file_url(f"{base}/{stem}.tar.gz"), mirrors.file_url(f"{base}/SHA256SUMS"), f"{stem}/etcdutl"


def _plan(spec: ClusterSpec, index: int) -> MemberPlan:
    plans = member_plans(spec)
    if not 0 <= index < len(plans):
        raise RestoreError(f"--member {index}: the stack has members 0 to {len(plans) - 1} "
                           f"(cfcr:controlPlane.count is {spec.control_plane.count})")
    return plans[index]


def restore_script(spec: ClusterSpec, index: int, snapshot_url: str) -> str:
    """The bash script member ``index`` runs first: fetch etcdutl (checked against the release's
    SHA256SUMS) and the snapshot, stop its API server and etcd, restore beside the old data and
    swap it in (the old data stays as ``member.before-restore-<time>``). It does not start etcd."""
    plan = _plan(spec, index)
    tarball, sums, inner = etcdutl_download(spec)
    tarball_name = tarball.rsplit("/", 1)[1]
    target = f"{ETCD_DATA_DIR}/{RESTORE_DIR_NAME}"
    args = " ".join(shlex.quote(a) for a in restore_args(plan, "$work/snapshot.db", target))
    args = args.replace("'$work/snapshot.db'", '"$work/snapshot.db"')
    return "\n".join([
        "#!/bin/bash",
        f"# cfcr etcd restore, step 1 on member {plan.name} ({plan.address}); written by",
        "# `python -m cfcr etcd-restore`. Run it on every member, then step 2 (start) on every member.",
        "set -euo pipefail",
        "umask 077",
        "export PATH=/usr/local/sbin:/usr/local/bin:$PATH",
        f"work={WORK_DIR} parked={PARKED_DIR} data={ETCD_DATA_DIR}",
        f"snapshot_url={shlex.quote(snapshot_url)}",
        'install -d -m 0700 "$work" "$parked"',
        "# etcdutl from etcd's release, checked against the release's SHA256SUMS",
        f"curl -fsSL --retry 5 -o \"$work/{tarball_name}\" {shlex.quote(tarball)}",
        f"curl -fsSL --retry 5 -o \"$work/SHA256SUMS\" {shlex.quote(sums)}",
        f"(cd \"$work\" && grep \" {tarball_name}\\$\" SHA256SUMS | sha256sum --check --strict -)",
        f"tar -xzf \"$work/{tarball_name}\" -C \"$work\" --strip-components=1 {shlex.quote(inner)}",
        "# the snapshot, and etcd's own check of it",
        'curl -fsS --retry 5 -o "$work/snapshot.db" "$snapshot_url"',
        '"$work/etcdutl" snapshot status "$work/snapshot.db" -w table',
        "# the API server and etcd stop: the kubelet stops what leaves the manifests directory",
        "for name in kube-apiserver etcd; do",
        f'  if [ -f "{MANIFESTS_DIR}/$name.yaml" ]; then mv "{MANIFESTS_DIR}/$name.yaml" "$parked/"; fi',
        "done",
        "for _ in $(seq 90); do",
        "  [ -z \"$(crictl ps --name '^(kube-apiserver|etcd)$' -q)\" ] && break",
        "  sleep 2",
        "done",
        "if [ -n \"$(crictl ps --name '^(kube-apiserver|etcd)$' -q)\" ]; then",
        '  echo "etcd or the API server still runs: not restoring" >&2',
        "  exit 1",
        "fi",
        "# restore beside the old data, then swap; the old data stays",
        'rm -rf "$data/' + RESTORE_DIR_NAME + '"',
        f'"$work/etcdutl" {args}',
        'if [ -d "$data/member" ]; then mv "$data/member" "$data/member.before-restore-$(date -u +%Y%m%dT%H%M%SZ)"; fi',
        f'mv "$data/{RESTORE_DIR_NAME}/member" "$data/member"',
        f'rmdir "$data/{RESTORE_DIR_NAME}"',
        'rm -f "$work/snapshot.db"',
        f'echo "{plan.name}: snapshot restored; start etcd once every member has restored (step 2)"',
        "",
    ])


def start_script(spec: ClusterSpec, index: int) -> str:
    """The bash script member ``index`` runs second, on every member at about the same time:
    start etcd, wait until it is healthy (it needs a quorum of restored members), then start the
    API server and restart the controller manager, the scheduler and the kubelet, which relist."""
    plan = _plan(spec, index)
    url = f"https://127.0.0.1:{CLIENT_PORT}"
    return "\n".join([
        "#!/bin/bash",
        f"# cfcr etcd restore, step 2 on member {plan.name} ({plan.address}); written by",
        "# `python -m cfcr etcd-restore`. Run it on every member at about the same time.",
        "set -euo pipefail",
        "export PATH=/usr/local/sbin:/usr/local/bin:$PATH",
        f"parked={PARKED_DIR} pki={ETCD_PKI_DIR}",
        f'if [ -f "$parked/etcd.yaml" ]; then mv "$parked/etcd.yaml" {MANIFESTS_DIR}/; fi',
        "healthy=",
        "for _ in $(seq 150); do",
        '  if curl -fsS --max-time 5 --cacert "$pki/ca.crt" --cert "$pki/healthcheck-client.crt" \\',
        f'    --key "$pki/healthcheck-client.key" {url}/health 2>/dev/null | grep -q \'"health":"true"\'; then',
        "    healthy=1",
        "    break",
        "  fi",
        "  sleep 2",
        "done",
        'if [ -z "$healthy" ]; then',
        f'  echo "etcd on {plan.name} is not healthy after 5 minutes: are the other members restored and started?" >&2',
        "  exit 1",
        "fi",
        f'if [ -f "$parked/kube-apiserver.yaml" ]; then mv "$parked/kube-apiserver.yaml" {MANIFESTS_DIR}/; fi',
        "for name in kube-controller-manager kube-scheduler; do",
        "  mapfile -t ids < <(crictl ps --name \"^$name\\$\" -q)",
        '  if [ "${#ids[@]}" -gt 0 ]; then crictl stop "${ids[@]}" >/dev/null; fi',
        "done",
        "systemctl restart kubelet",
        'rmdir "$parked" 2>/dev/null || true',
        f'echo "{plan.name}: etcd healthy, control plane started from the snapshot"',
        "",
    ])


def restore_commands(spec: ClusterSpec) -> RestoreCommands:
    """The cloud's commands of the restore procedure (its contract's ``restore_commands``), or
    :class:`RestoreError` where the cloud stores no etcd snapshots yet."""
    commands = clouds.package(spec.cloud).restore_commands(spec)
    if commands is None:
        raise RestoreError(f"cfcr:cloud is {spec.cloud}: its cloud package stores no etcd snapshots, so there is nothing to restore from")
    return commands


def _step_path(commands: RestoreCommands, out: Path, step: str, member: str) -> Path:
    """The file ``commands.run_on_member`` runs a step from: the cloud's own step file, else the script."""
    return out / f"{step}-{member}{commands.step_file_suffix or '.sh'}"


def write_kit(spec: ClusterSpec, snapshot_url: str, out: Path) -> list[Path]:
    """Every member's step 1 and step 2 scripts (and, where the cloud runs them from a file of
    its own, such as AWS Run Command's parameters, that file) under ``out``, mode 0600: the
    download URL in them is a credential while it lasts."""
    commands = restore_commands(spec)
    out.mkdir(parents=True, exist_ok=True)
    out.chmod(0o700)
    written: list[Path] = []
    for plan in member_plans(spec):
        for step, text in (("restore", restore_script(spec, plan.index, snapshot_url)),
                           ("start", start_script(spec, plan.index))):
            files = {out / f"{step}-{plan.name}.sh": text}
            step_file = commands.member_step_file(text)
            if step_file is not None:
                files[out / f"{step}-{plan.name}{step_file[0]}"] = step_file[1]
            for path, content in files.items():
                path.write_text(content)
                path.chmod(0o600)
                written.append(path)
    return written


def runbook(spec: ClusterSpec, snapshot_url: str | None = None, out: Path | None = None,
            stack: str = "<stack>") -> str:
    """The procedure for ``spec``'s stack, in order: find a snapshot and a download URL, then (with
    ``snapshot_url`` and the kit written to ``out``) run step 1 on every member, step 2 on every
    member, and the checks after."""
    ops = restore_commands(spec)
    assert spec.name is not None
    plans = member_plans(spec)
    # a cloud may open a way to the members for the steps and close it after (GCP: SSH through IAP)
    before: list[str] = list(getattr(ops, "before_steps", ()))
    after: list[str] = list(getattr(ops, "after_steps", ()))
    lines = [
        f"etcd restore for cluster {spec.name} ({len(plans)} members: "
        + ", ".join(f"{p.name} {p.address}" for p in plans) + ")",
        "",
        "Only into this same stack: the snapshot's Secrets need its encryption key (docs/backups.md).",
        "",
        "1. Find a snapshot and a download URL for it (credentials that may read the bucket and decrypt with its key):",
        "",
        *[f"   {line}" for line in ops.list_and_presign],
        "",
    ]
    if snapshot_url is None or out is None:
        lines += [
            "2. Write the members' scripts with that URL:",
            "",
            f"   python -m cfcr etcd-restore --stack {stack} --snapshot-url \"$URL\" --out ./etcd-restore-{spec.name}",
            "",
        ]
        return "\n".join(lines) + "\n"
    lines += [
        f"2. Scripts for every member are in {out} (step 1 restore-*.sh, step 2 start-*.sh; delete the",
        "   directory afterwards: the URL in them reads the snapshot while it lasts).",
        "",
        "3. Step 1 on EVERY member (stops its API server and etcd, restores; the cluster is down from here):",
        "",
        *([ "   First let the steps reach the members (closed again in step 6):", "",
            *[f"   {line}" for line in before], ""] if before else []),
        *[f"   {line}" for p in plans for line in ops.run_on_member(p.name, _step_path(ops, out, "restore", p.name))],
        "",
        f"   Wait until each says `snapshot restored` ({ops.step_output_hint});",
        "   stop if one fails: nothing has started yet.",
        "",
        "4. Step 2 on EVERY member, all at about the same time (etcd needs a quorum to become healthy):",
        "",
        *[f"   {line}" for p in plans for line in ops.run_on_member(p.name, _step_path(ops, out, "start", p.name))],
        "",
        "5. Check, with the admin kubeconfig:",
        "",
        "   kubectl get --raw='/readyz?verbose'",
        "   kubectl get nodes -o wide        # Nodes of VMs that no longer exist: kubectl delete node NAME",
        "   python -m cfcr smoke --kubeconfig admin.kubeconfig",
        "",
        f"6. On each member, once all is well: rm -rf {ETCD_DATA_DIR}/member.before-restore-* {WORK_DIR}",
        "",
        *([*[f"   {line}" for line in after], ""] if after else []),
    ]
    return "\n".join(lines) + "\n"
