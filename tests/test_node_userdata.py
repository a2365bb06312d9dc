"""cfcr.node user-data: every role of several clusters, checked by the real tools
(``cloud-init schema``, ``shellcheck``), for size, for secrets and for pinned binaries."""

from __future__ import annotations

import gzip
import hashlib
import re
import shlex
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from cfcr.aws.node_hook import AwsNodeHook, S3SnapshotTarget
from cfcr.clouds import cloud_user_data_limit
from cfcr.azure.node_hook import AzureNodeHook
from cfcr.channels import CHANNELS, Release, resolve
from cfcr.config import ClusterSpec, load_spec
from cfcr.gcp.node_hook import GcpNodeHook
from cfcr.node import (
    NodeContext,
    NodeHook,
    Role,
    UserDataLimit,
    UserDataTooLargeError,
    render_user_data,
    roles_for,
)
from cfcr.node.delivered import delivered_scripts
from cfcr.node.secrets import pki_path, secret_files_for
from cfcr.config.topology import ControlPlaneMember
from cfcr.pki.specs import (
    PkiInputs,
    credentials_for_role,
    materials_for_role,
    secret_files,
)
from tests.support.tools import needs
from tests.support.validators import (
    cloud_init_failures,
    load_cloud_config,
    plain,
    shell_sources,
    shellcheck_text_failures,
)

TOKEN_LIKE = re.compile(r"(?<![a-z0-9])[a-z0-9]{6}\.[a-z0-9]{16}(?![a-z0-9])")
MIRRORS = {
    "registry.k8s.io": ["https://mirror.example.com/k8s"],
    "docker.io": ["https://mirror.example.com/docker", "https://backup.example.com"],
    "dl.k8s.io": ["https://files.example.com/dl-k8s"],
    "github.com": ["https://files.example.com/github/"],
}
POOLS = [
    {"name": "default"},
    {"name": "gpu", "labels": {"example.com/accelerator": "a100"},
     "taints": ["nvidia.com/gpu=present:NoSchedule", "dedicated:NoExecute"], "architecture": "arm64"},
]


# --------------------------------------------------------------------------- builders

def make_spec(cloud: str = "aws", count: int = 3, mirrors: bool = False, **extra: Any) -> ClusterSpec:
    region = {"aws": "us-east-1", "gcp": "europe-west4", "azure": "westeurope"}[cloud]
    config: dict[str, Any] = {
        "cfcr:cloud": cloud,
        "cfcr:region": region,
        "cfcr:controlPlane": {"count": count},
        "cfcr:nodePools": POOLS,
    }
    if mirrors:
        config["cfcr:registryMirrors"] = MIRRORS
    config.update({f"cfcr:{k}": v for k, v in extra.items()})
    return load_spec(config, "test")


def make_hook(cloud: str) -> NodeHook:
    if cloud == "aws":
        return AwsNodeHook(region="us-east-1")
    if cloud == "gcp":
        return GcpNodeHook(project="cfcr-test-project")
    return AzureNodeHook(vault_name="cfcr-test-kv", client_id="00000000-0000-0000-0000-000000000001")


def secret_id(cloud: str, key: str) -> str:
    slug = "cfcr-test-" + key.replace("/", "-").replace(".", "-")
    if cloud == "aws":
        return f"arn:aws:secretsmanager:us-east-1:123456789012:secret:{slug}-AbCdEf"
    return slug


def make_ctx(spec: ClusterSpec, *, dns_members: bool = False, pin: str | None = None) -> NodeContext:
    members = [
        ControlPlaneMember(f"{spec.name}-cp-{i}",
                           f"cp-{i}.cluster.internal" if dns_members else f"10.0.{i}.10")
        for i in range(spec.control_plane.count)
    ]
    keys: set[str] = set(credentials_for_role("control-plane")) | set(materials_for_role("worker"))
    for m in members:
        keys |= set(materials_for_role("control-plane", m.name))
    return NodeContext(
        api_endpoint="api.test.example.com",
        control_plane_members=members,
        secret_ids={k: secret_id(spec.cloud, k) for k in sorted(keys)},
        etcd_disk_device="/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0",
        ca_cert_hash=pin,
    )


def rendered(spec: ClusterSpec, release: Release | None = None,
             ctx: NodeContext | None = None) -> Iterator[tuple[Role, bytes]]:
    release = release or resolve(spec.kubernetes.version)
    ctx = ctx or make_ctx(spec)
    for role in roles_for(spec):
        yield role, render_user_data(spec, release, ctx, role, make_hook(spec.cloud))


def write_files(doc: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["path"]: f for f in doc["write_files"]}


load = load_cloud_config


# (cloud, control-plane count, mirrors): every cloud, 1/3/5 members, with and without mirrors.
CASES: list[tuple[str, int, bool]] = [
    ("aws", 1, False), ("aws", 3, True), ("aws", 5, True),
    ("gcp", 3, False), ("gcp", 5, True),
    ("azure", 1, True), ("azure", 5, False),
]


@pytest.fixture(scope="module")
def renders() -> dict[str, list[tuple[Role, bytes]]]:
    """Case id (``aws-5cp-mirrors``) -> every role's user-data."""
    return {
        f"{cloud}-{count}cp{'-mirrors' if mirrors else ''}": list(rendered(make_spec(cloud, count, mirrors)))
        for cloud, count, mirrors in CASES
    }


def _all_roles(renders: dict[str, list[tuple[Role, bytes]]]) -> Iterator[tuple[str, Role, bytes]]:
    for case, items in renders.items():
        for role, data in items:
            yield case, role, data


# --------------------------------------------------------------------------- real tools

@needs("cloud-init")
def test_cloud_init_schema_check_can_fail(tmp_path: Path) -> None:
    """The schema check must be able to fail: an unknown write_files key is rejected."""
    bad = "#cloud-config\nwrite_files:\n  - path: /x\n    content: x\n    bogus: 1\n"
    failures = cloud_init_failures("bad", bad.encode(), tmp_path)
    assert len(failures) == 1 and "bogus" in failures[0]


@needs("cloud-init")
def test_every_role_passes_cloud_init_schema(renders: dict[str, list[tuple[Role, bytes]]],
                                             tmp_path: Path) -> None:
    failures = [f for case, role, data in _all_roles(renders)
                for f in cloud_init_failures(f"{case}-{role.slug}", data, tmp_path)]
    assert not failures, "\n".join(failures)


@needs("shellcheck")
def test_shellcheck_can_fail(tmp_path: Path) -> None:
    failures = shellcheck_text_failures({"bad.sh": "#!/bin/bash\nrm -rf $1/*\n"}, tmp_path)
    assert len(failures) == 1 and re.search(r"SC2086|SC2115", failures[0]), failures


@needs("shellcheck")
def test_every_script_passes_shellcheck(renders: dict[str, list[tuple[Role, bytes]]],
                                        tmp_path: Path) -> None:
    texts: dict[str, str] = {}
    labels: dict[str, str] = {}
    for case, role, data in _all_roles(renders):
        for name, text in shell_sources(load(data)).items():
            digest = hashlib.sha256(text.encode()).hexdigest()
            labels.setdefault(digest, f"{case}/{role.slug}:{name}")
            texts.setdefault(labels[digest], text)
    # every script a node runs is among what was checked (a filter that stopped finding them would pass)
    checked = {label.rsplit(":", 1)[1] for label in texts}
    shipped = {f["path"] for _, _, data in _all_roles(renders) for f in load(data)["write_files"]
               if f["path"].endswith(".sh")}
    assert shipped and shipped | {"runcmd"} <= checked, sorted(shipped - checked)
    failures = shellcheck_text_failures(texts, tmp_path)
    assert not failures, "\n".join(failures)


# --------------------------------------------------------------------------- sizes

def test_limits() -> None:
    assert cloud_user_data_limit("aws") == 16384
    assert cloud_user_data_limit("azure") == 65535
    assert cloud_user_data_limit("gcp") == 262144
    with pytest.raises(ValueError, match="unknown cloud"):
        cloud_user_data_limit("openstack")


def test_every_role_fits_its_cloud(renders: dict[str, list[tuple[Role, bytes]]]) -> None:
    for case, role, data in _all_roles(renders):
        cloud = case.split("-")[0]
        assert len(data) <= cloud_user_data_limit(cloud), (case, role.slug, len(data))


def test_gzip_only_when_needed_and_never_on_gcp(renders: dict[str, list[tuple[Role, bytes]]]) -> None:
    for case, role, data in _all_roles(renders):
        cloud = case.split("-")[0]
        if data[:2] == b"\x1f\x8b":
            assert cloud != "gcp"
            assert len(gzip.decompress(data)) > cloud_user_data_limit(cloud), (case, role.slug)
        else:
            assert data.startswith(b"#cloud-config\n")


def test_too_large_names_role_and_sizes() -> None:
    spec = make_spec("aws", 3)
    release = resolve(spec.kubernetes.version)
    ctx = make_ctx(spec)
    with pytest.raises(UserDataTooLargeError, match=r"control-plane-1: user-data is \d+ bytes \(\d+ gzipped\), over the aws limit of 2000"):
        render_user_data(spec, release, ctx, Role.control_plane(1), make_hook("aws"), UserDataLimit(2000, gzip=True))
    gcp = make_spec("gcp", 1)
    with pytest.raises(UserDataTooLargeError, match="worker-gpu.*cannot carry gzip"):
        render_user_data(gcp, release, make_ctx(gcp), Role.worker("gpu"), make_hook("gcp"), UserDataLimit(5000, gzip=False))


# --------------------------------------------------------------------------- secrets

def test_no_key_material_in_user_data(renders: dict[str, list[tuple[Role, bytes]]]) -> None:
    for case, role, data in _all_roles(renders):
        text = plain(data).decode()
        assert "PRIVATE KEY" not in text, (case, role.slug)
        assert "BEGIN CERTIFICATE" not in text, (case, role.slug)
        assert not TOKEN_LIKE.findall(text), (case, role.slug, TOKEN_LIKE.findall(text))


def test_token_pattern_would_catch_a_token() -> None:
    assert TOKEN_LIKE.search("token: 'abcdef.0123456789abcdef'")


def test_workers_fetch_only_ca_cert_and_token() -> None:
    spec = make_spec("aws", 3)
    files = secret_files_for(Role.worker("gpu"), make_ctx(spec))
    assert [(f.key, f.path, f.mode) for f in files] == [
        ("ca.crt", "/etc/cfcr/pki/ca.crt", "0644"),
        ("bootstrap-token", "/etc/cfcr/secrets/bootstrap-token", "0600"),
    ]


def test_control_plane_fetches_its_own_etcd_leaves_and_the_etcd_ca_key() -> None:
    spec = make_spec("aws", 3)
    ctx = make_ctx(spec)
    files = {f.key: f for f in secret_files_for(Role.control_plane(1), ctx)}
    me, other = ctx.control_plane_members[1].name, ctx.control_plane_members[0].name
    assert "etcd/ca.key" in files
    assert files[f"etcd/members/{me}/server.key"].path == "/etc/kubernetes/pki/etcd/server.key"
    assert not any(other + "/" in k for k in files)
    assert "encryption-key" in files
    for f in files.values():
        assert f.mode == ("0644" if f.path.endswith((".crt", ".pub")) else "0600"), f
    # The landing paths agree with the PKI layer's canonical map.
    canon = secret_files(PkiInputs(cluster_name=str(spec.name), control_plane_nodes=ctx.control_plane_members))
    for key, f in files.items():
        if key in canon:
            assert f.path == f"/etc/kubernetes/pki/{canon[key]}" == f"/etc/kubernetes/pki/{pki_path(key)}"


def test_missing_secret_id_is_a_clear_error() -> None:
    spec = make_spec("aws", 1)
    ctx = make_ctx(spec)
    ids = dict(ctx.secret_ids)
    del ids["etcd/ca.key"]
    broken = NodeContext(api_endpoint=ctx.api_endpoint, control_plane_members=ctx.control_plane_members,
                         secret_ids=ids)
    with pytest.raises(ValueError, match="control-plane-0: .*etcd/ca.key"):
        secret_files_for(Role.control_plane(0), broken)


def test_secret_ids_reach_the_fetch_script_quoted() -> None:
    for cloud in ("aws", "gcp", "azure"):
        spec = make_spec(cloud, 1)
        ctx = make_ctx(spec)
        doc = load(render_user_data(spec, resolve(spec.kubernetes.version), ctx, Role.control_plane(0),
                                    make_hook(cloud)))
        script = write_files(doc)["/etc/cfcr/secrets.sh"]["content"]
        assert secret_id(cloud, "ca.key") in script
        if cloud != "aws":
            assert "-H @-" in script  # the access token goes to curl on stdin, not argv
        else:
            assert re.search(r"curl -sS [^|]*-K - --aws-sigv4", script)  # the credentials go to curl on stdin, not argv
        assert "Bearer" not in re.sub(r"""(["'])Authorization: Bearer %s\\n\1""", "", script), "only a printf format"


def test_hooks() -> None:
    aws = AwsNodeHook(region="eu-west-1")
    assert aws.setup_commands() == [] and aws.packages() == [], "nothing to install: no CLI, no snap store"
    assert aws.fetch_command("arn:aws:secretsmanager:eu-west-1:1:secret:a b") == \
        "cfcr_aws_secret_get 'arn:aws:secretsmanager:eu-west-1:1:secret:a b'"
    library = aws.shell_functions()
    assert "https://secretsmanager.eu-west-1.amazonaws.com" in library and "https://sts." not in library
    # STS only where a snapshot upload needs it (an air-gapped VPC has its endpoint only then)
    backups = AwsNodeHook(region="eu-west-1", backups=S3SnapshotTarget("b", "w")).shell_functions()
    assert "https://sts.eu-west-1.amazonaws.com" in backups
    assert "AWS_ENDPOINT_URL_SECRETS_MANAGER" in library and "AWS_ENDPOINT_URL_EC2" in library
    china = AwsNodeHook(region="cn-north-1").shell_functions()
    assert "https://ec2.cn-north-1.amazonaws.com.cn" in china and "amazonaws.com}" not in china
    # the functions run against an AWS API emulator: tests/test_aws_node_hook_real.py
    gcp = GcpNodeHook(project="p1")
    assert gcp.fetch_command("s1") == "cfcr_gcp_secret_get s1" and gcp.packages() == []
    gcp_library = gcp.shell_functions()
    assert "name=projects/p1/secrets/$name" in gcp_library and "/versions/latest:access" in gcp_library
    assert "Metadata-Flavor: Google" in gcp_library and "GCE_METADATA_HOST" in gcp_library
    # the GCP functions run against a stand-in: tests/test_gcp_node_hook_real.py
    az = AzureNodeHook(vault_name="kv1")
    assert az.fetch_command("s1") == "cfcr_azure_secret_get s1" and az.packages() == []
    az_library = az.shell_functions()
    assert "https://$vault.vault.azure.net" in az_library and "vault=kv1 " in az_library
    assert "resource=$1${client:+&client_id=$client}" in az_library and "cfcr-identity-client-id" in az_library
    assert "client=00000000-0000-0000-0000-000000000001 " in make_hook("azure").shell_functions()  # type: ignore[attr-defined]
    # the Azure functions run against a stand-in: tests/test_azure_node_hook_real.py


# --------------------------------------------------------------------------- binaries

def _artifacts(doc: Mapping[str, Any]) -> list[list[str]]:
    text = write_files(doc)["/etc/cfcr/artifacts.list"]["content"]
    return [line.split("|") for line in text.splitlines() if line and not line.startswith("#")]


@pytest.mark.parametrize("channel", sorted(CHANNELS))
def test_pinned_versions_and_checksums(channel: str) -> None:
    spec = make_spec("aws", 1, kubernetes={"version": channel})
    release = resolve(channel)
    ctx = make_ctx(spec)
    for role, arch in ((Role.control_plane(0), "amd64"), (Role.worker("gpu"), "arm64")):
        rows = {r[0]: r for r in _artifacts(load(render_user_data(spec, release, ctx, role, make_hook("aws"))))}
        expected = [("kubernetes", release.kubernetes.version, release.kubernetes.url(arch),
                     release.kubernetes.checksum(arch))]
        expected += [(n, release.component(n).version, release.component(n).url(arch),
                      release.component(n).checksum(arch)) for n in ("containerd", "runc", "cni_plugins", "crictl")]
        for name, version, url, checksum in expected:
            row = rows[name]
            assert row[1:4] == [version, url, checksum.algorithm], (role.slug, row)
            if checksum.value is None:
                assert row[4:] == ["-", checksum.file_url]
            else:
                assert row[4:] == [checksum.value, "-"]


def test_publisher_file_fallback_is_visible_in_the_boot_script() -> None:
    spec = make_spec("aws", 1)
    doc = load(render_user_data(spec, resolve(spec.kubernetes.version), make_ctx(spec), Role.worker("default"),
                                make_hook("aws")))
    script = write_files(doc)["/usr/local/lib/cfcr/bootstrap.sh"]["content"]
    assert "publisher's checksum file" in script and "pinned in cfcr's channel data" in script
    assert '"${algo}sum" --check' in script


def test_binary_mirrors_rewrite_downloads_and_checksums_stay() -> None:
    spec = make_spec("aws", 1, mirrors=True)
    release = resolve(spec.kubernetes.version)
    rows = {r[0]: r for r in _artifacts(load(render_user_data(spec, release, make_ctx(spec), Role.control_plane(0),
                                                               make_hook("aws"))))}
    assert rows["kubernetes"][2].startswith("https://files.example.com/dl-k8s/v")
    assert rows["containerd"][2].startswith("https://files.example.com/github/containerd/containerd/releases/")
    assert "//containerd" not in rows["containerd"][2]
    pinned = release.component("runc").checksum("amd64").value
    assert rows["runc"][4] == pinned


def test_containerd_config_and_registry_mirrors() -> None:
    spec = make_spec("aws", 1, mirrors=True)
    release = resolve(spec.kubernetes.version)
    files = write_files(load(render_user_data(spec, release, make_ctx(spec), Role.worker("default"),
                                              make_hook("aws"))))
    config = files["/etc/containerd/config.toml"]["content"]
    import tomllib

    parsed = tomllib.loads(config)
    assert parsed["version"] == 3
    images = parsed["plugins"]["io.containerd.cri.v1.images"]
    assert images["pinned_images"]["sandbox"] == release.pause_image
    assert images["registry"]["config_path"] == "/etc/containerd/certs.d"
    runc = parsed["plugins"]["io.containerd.cri.v1.runtime"]["containerd"]["runtimes"]["runc"]
    assert runc["options"]["SystemdCgroup"] is True
    docker = tomllib.loads(files["/etc/containerd/certs.d/docker.io/hosts.toml"]["content"])
    assert docker["server"] == "https://registry-1.docker.io"
    # a mirror under a path is the registry API root at <path> (the image prefix
    # mirror.example.com/docker the addons name): containerd must not append its own /v2
    assert list(docker["host"]) == ["https://mirror.example.com/v2/docker", "https://backup.example.com"]
    assert docker["host"]["https://mirror.example.com/v2/docker"] == {
        "capabilities": ["pull", "resolve"], "override_path": True}
    assert docker["host"]["https://backup.example.com"] == {"capabilities": ["pull", "resolve"]}
    assert "/etc/containerd/certs.d/registry.k8s.io/hosts.toml" in files
    assert not any(p.startswith(("/etc/containerd/certs.d/dl.k8s.io", "/etc/containerd/certs.d/github.com"))
                   for p in files)


# --------------------------------------------------------------------------- files and units

def test_roles_for() -> None:
    spec = make_spec("aws", 5)
    assert [r.slug for r in roles_for(spec)] == [
        *(f"control-plane-{i}" for i in range(5)), "worker-default", "worker-gpu"]


def test_members_differ_only_where_they_should() -> None:
    spec = make_spec("aws", 3)
    release = resolve(spec.kubernetes.version)
    ctx = make_ctx(spec)
    a = write_files(load(render_user_data(spec, release, ctx, Role.control_plane(0), make_hook("aws"))))
    b = write_files(load(render_user_data(spec, release, ctx, Role.control_plane(2), make_hook("aws"))))
    differing = {p for p in a if a[p]["content"] != b[p]["content"]}
    assert differing == {"/etc/cfcr/node.env", "/etc/cfcr/secrets.sh", "/etc/cfcr/kubeadm.yaml.tmpl",
                         "/etc/kubernetes/manifests/etcd.yaml"}


def test_control_plane_files_and_modes() -> None:
    spec = make_spec("azure", 3)
    ctx = make_ctx(spec)
    scripts = delivered_scripts(spec, Role.control_plane(0), make_hook("azure"))
    ctx = replace(ctx, secret_ids={**ctx.secret_ids, **{s.key: secret_id("azure", s.key) for s in scripts}})
    doc = load(render_user_data(spec, resolve(spec.kubernetes.version), ctx, Role.control_plane(0),
                                make_hook("azure")))
    files = write_files(doc)
    for path in ("/etc/kubernetes/manifests/etcd.yaml", "/etc/kubernetes/audit/policy.yaml",
                 "/etc/cfcr/encryption.yaml.tmpl", "/etc/kubernetes/authn/config.yaml",
                 "/etc/systemd/system/cfcr-maintain.timer"):
        assert path in files, path
    # the member model and the maintenance come from the secret store, with their modes
    assert {s.name for s in scripts} >= {"member.sh", "maintain.sh"}
    for script in scripts:
        assert script.path not in files, script.path
        assert f"'{script.key}|{script.path}|{script.mode}'" in files["/etc/cfcr/secrets.sh"]["content"]
    assert {s.name: s.mode for s in scripts}["member.sh"] == "0644"
    assert {s.name: s.mode for s in scripts}["maintain.sh"] == "0700"
    assert "@ENCRYPTION_KEY@" in files["/etc/cfcr/encryption.yaml.tmpl"]["content"]
    assert files["/etc/kubernetes/manifests/etcd.yaml"]["permissions"] == "0600"
    assert files["/usr/local/lib/cfcr/bootstrap.sh"]["permissions"] == "0700"
    assert all(f["owner"] == "root:root" for f in files.values())
    assert doc["runcmd"][-1] == ["/usr/local/lib/cfcr/bootstrap.sh"]
    timer = files["/etc/systemd/system/cfcr-maintain.timer"]["content"]
    assert "OnCalendar=daily" in timer and "Persistent=true" in timer
    dropin = files["/etc/systemd/system/kubelet.service.d/20-cfcr-etcd-disk.conf"]["content"]
    assert "RequiresMountsFor=/var/lib/etcd" in dropin
    env = files["/etc/cfcr/node.env"]["content"]
    assert "CFCR_ETCD_DEVICE=/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0" in env


def test_worker_has_no_control_plane_material() -> None:
    spec = make_spec("gcp", 3)
    files = write_files(load(render_user_data(spec, resolve(spec.kubernetes.version), make_ctx(spec),
                                              Role.worker("default"), make_hook("gcp"))))
    assert not any(p.startswith("/etc/kubernetes/manifests/") for p in files)
    assert "/usr/local/lib/cfcr/maintain.sh" not in files
    assert "encryption" not in files["/etc/cfcr/secrets.sh"]["content"]


def test_kubelet_unit_uses_kubeadm_dropin_semantics() -> None:
    spec = make_spec("aws", 1)
    files = write_files(load(render_user_data(spec, resolve(spec.kubernetes.version), make_ctx(spec),
                                              Role.worker("default"), make_hook("aws"))))
    dropin = files["/etc/systemd/system/kubelet.service.d/10-kubeadm.conf"]["content"]
    for needle in ("EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env", "$KUBELET_KUBEADM_ARGS",
                   "--config=/var/lib/kubelet/config.yaml", "--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf",
                   "--kubeconfig=/etc/kubernetes/kubelet.conf", "ExecStart=\n"):
        assert needle in dropin, needle
    sysctl = files["/etc/sysctl.d/90-cfcr.conf"]["content"]
    for needle in ("net.ipv4.ip_forward = 1", "net.bridge.bridge-nf-call-iptables = 1", "vm.overcommit_memory = 1",
                   "kernel.panic = 10", "kernel.panic_on_oops = 1"):
        assert needle in sysctl
    assert files["/etc/modules-load.d/cfcr.conf"]["content"].split() == ["overlay", "br_netfilter"]


# --------------------------------------------------------------------------- the shell library, run for real

LIB = Path(__file__).resolve().parents[1] / "cfcr" / "node" / "scripts" / "lib.sh"


def _bash(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", f"set -euo pipefail\n. {shlex.quote(str(LIB))}\n{script}"],
                          capture_output=True, text=True, cwd=cwd, check=False)


def test_render_template_fills_placeholders_privately(tmp_path: Path) -> None:
    token = "abcdef.0123456789abcdef"
    key = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80="
    (tmp_path / "token").write_text(token + "\n")
    (tmp_path / "key").write_text(key + "\n")
    (tmp_path / "tmpl").write_text("token: '@BOOTSTRAP_TOKEN@'\nsecret: '@ENCRYPTION_KEY@'\nand: '@BOOTSTRAP_TOKEN@'\n")
    result = _bash(
        f"CFCR_TOKEN_FILE={tmp_path}/token CFCR_ENCRYPTION_KEY_FILE={tmp_path}/key "
        f"render_template {tmp_path}/tmpl {tmp_path}/out/config.yaml", tmp_path)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "out" / "config.yaml"
    assert out.read_text() == f"token: '{token}'\nsecret: '{key}'\nand: '{token}'\n"
    assert out.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o700
    assert token not in result.stdout + result.stderr


def test_render_template_refuses_a_malformed_token(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("not-a-token\n")
    (tmp_path / "tmpl").write_text("token: '@BOOTSTRAP_TOKEN@'\n")
    result = _bash(f"CFCR_TOKEN_FILE={tmp_path}/token render_template {tmp_path}/tmpl {tmp_path}/out", tmp_path)
    assert result.returncode != 0
    assert "malformed" in result.stderr and "not-a-token" not in result.stderr
    assert not (tmp_path / "out").exists()


@needs("openssl")
def test_ca_cert_hash_matches_kubeadm_pin(tmp_path: Path) -> None:
    from cryptography import x509 as cx509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    import datetime

    from cfcr.pki.specs import kubeadm_ca_cert_hash

    key = ec.generate_private_key(ec.SECP256R1())
    name = cx509.Name([cx509.NameAttribute(cx509.oid.NameOID.COMMON_NAME, "test-ca")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (cx509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(cx509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    (tmp_path / "ca.crt").write_text(pem)
    result = _bash(f"CFCR_CA_CERT={tmp_path}/ca.crt; ca_cert_hash", tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == kubeadm_ca_cert_hash(pem)


def test_fetch_secret_to_is_atomic_and_refuses_empty(tmp_path: Path) -> None:
    ok = _bash(f"cfcr_secret_fetch() {{ printf 'value-%s' \"$1\"; }}; fetch_secret_to k1 {tmp_path}/d/s 0600", tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "d" / "s").read_text() == "value-k1"
    assert (tmp_path / "d" / "s").stat().st_mode & 0o777 == 0o600
    empty = _bash(f"sleep() {{ :; }}; cfcr_secret_fetch() {{ :; }}; fetch_secret_to k2 {tmp_path}/d/t 0600", tmp_path)
    assert empty.returncode != 0
    assert not (tmp_path / "d" / "t").exists()
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["s"]  # no temp files left behind


MEMBER_SH = LIB.with_name("member.sh")


def _forget_stale_node(tmp_path: Path, *, new_cluster: bool, answers: list[str], deletes: list[int]) -> tuple[
        subprocess.CompletedProcess[str], list[str]]:
    """member.sh's forget_stale_node with kubectl/kubeadm/provider_id/sleep as shell functions:
    each ``kubectl get`` gives the next of ``answers`` ("fail": exit 1, else the provider ID it
    prints), each ``kubectl delete`` exits with the next of ``deletes`` (counted in a file: the
    script calls ``kubectl get`` in a subshell). Returns the run and the calls made."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    calls = tmp_path / "calls"
    script = f"""
CFCR_STATE={tmp_path}
. {shlex.quote(str(MEMBER_SH))}
CFCR_NODE_NAME=ip-10-0-1-10.ec2.internal CFCR_KUBEADM_CONFIG={tmp_path}/kubeadm.yaml CFCR_KUBERNETES_DIR={tmp_path}
ETCD_NEW_CLUSTER={1 if new_cluster else 0}
answers=({" ".join(answers)}) deletes=({" ".join(map(str, deletes))})
provider_id() {{ echo aws:///us-east-1a/i-new; }}
kubeadm() {{ :; }}
sleep() {{ echo "sleep $1" >>{calls}; }}
kubectl() {{
  case " $* " in
    *" get node "*) echo get >>{calls}; g=$(grep -c '^get$' {calls}); local a=${{answers[$((g - 1))]}}
                    [ "$a" != fail ] || return 1; [ "$a" = none ] || printf %s "$a" ;;
    *" delete node "*) echo delete >>{calls}; d=$(grep -c '^delete$' {calls}); return "${{deletes[$((d - 1))]}}" ;;
  esac
}}
forget_stale_node
"""
    out = _bash(script, tmp_path)
    return out, calls.read_text().split("\n")[:-1] if calls.exists() else []


def test_forget_stale_node_deletes_the_old_vms_node_and_asks_again_while_the_api_is_away(tmp_path: Path) -> None:
    out, calls = _forget_stale_node(tmp_path, new_cluster=False, answers=["fail", "fail", *["aws:///us-east-1a/i-old"] * 2],
                                    deletes=[1, 0])
    assert out.returncode == 0, out.stderr
    # a failed delete is asked again too: the Node would otherwise keep the old provider ID
    assert calls == ["get", "sleep 5", "get", "sleep 5", "get", "delete", "sleep 5", "get", "delete"], calls
    assert "belongs to the replaced VM (aws:///us-east-1a/i-old)" in out.stderr


def test_forget_stale_node_leaves_a_node_that_is_its_own_or_absent(tmp_path: Path) -> None:
    for answer in ("aws:///us-east-1a/i-new", "none"):
        out, calls = _forget_stale_node(tmp_path / answer.rsplit("/", 1)[-1], new_cluster=False, answers=[answer],
                                        deletes=[])
        assert out.returncode == 0 and calls == ["get"], (answer, calls, out.stderr)


def test_forget_stale_node_boots_on_when_the_api_stays_away(tmp_path: Path) -> None:
    """In a cluster that ran before: a minute of asking, then a warning, and the boot goes on.
    A new cluster has no API yet: one try, no wait."""
    out, calls = _forget_stale_node(tmp_path / "old", new_cluster=False, answers=["fail"] * 12, deletes=[])
    assert out.returncode == 0, out.stderr
    assert calls.count("get") == 12 and calls.count("sleep 5") == 11, calls
    assert "did not answer about Node ip-10-0-1-10.ec2.internal in a minute" in out.stderr
    out, calls = _forget_stale_node(tmp_path / "new", new_cluster=True, answers=["fail"], deletes=[])
    assert out.returncode == 0 and calls == ["get"] and "WARNING" not in out.stderr, (calls, out.stderr)


# --------------------------------------------------------------------------- node identity (provider ID)

def test_every_role_gets_the_identity_script_of_its_cloud(renders: dict[str, list[tuple[Role, bytes]]]) -> None:
    prefixes = {"aws": 'printf "aws:///', "gcp": 'printf "gce://', "azure": 'printf "azure://'}
    for case, role, data in _all_roles(renders):
        files = write_files(load(data))
        script = files["/etc/cfcr/identity.sh"]
        assert script["permissions"] == "0600" and script["owner"] == "root:root"
        assert "cfcr_provider_id() {" in script["content"]
        assert prefixes[case.split("-")[0]] in script["content"], (case, role.slug)
        assert "@PROVIDER_ID@" in files["/etc/cfcr/kubeadm.yaml.tmpl"]["content"], (case, role.slug)
        # the scripts load it through lib.sh's load_node_facts
        assert '. "$CFCR_IDENTITY_SCRIPT"' in files["/usr/local/lib/cfcr/lib.sh"]["content"]
        assert "CFCR_IDENTITY_SCRIPT=/etc/cfcr/identity.sh\n" in files["/etc/cfcr/node.env"]["content"]
        assert "CFCR_ETC=/etc/cfcr" in files["/usr/local/lib/cfcr/lib.sh"]["content"]
        for name in ("/usr/local/lib/cfcr/bootstrap.sh", "/usr/local/lib/cfcr/maintain.sh"):
            if name in files:
                assert "\nload_node_facts\n" in files[name]["content"], name


class _FakeImds:
    """A local stand-in for EC2's IMDSv2: a token from PUT /latest/api/token, and metadata
    only for GETs that carry that token."""

    TOKEN = "AQAEAFake-imds-session-token=="

    def __init__(self) -> None:
        import http.server
        import threading

        self.seen_tokens: list[str | None] = []
        imds = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, code: int, body: str) -> None:
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

            def do_PUT(self) -> None:  # noqa: N802
                ok = self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
                self._reply(200 if ok else 400, imds.TOKEN if ok else "")

            def do_GET(self) -> None:  # noqa: N802
                token = self.headers.get("X-aws-ec2-metadata-token")
                imds.seen_tokens.append(token)
                if token != imds.TOKEN:
                    self._reply(401, "")
                    return
                answers = {"/latest/meta-data/placement/availability-zone": "eu-west-1b",
                           "/latest/meta-data/instance-id": "i-0123456789abcdef0"}
                if self.path in answers:
                    self._reply(200, answers[self.path])
                else:
                    self._reply(404, "")

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _aws_identity(tmp_path: Path, imds_url: str) -> subprocess.CompletedProcess[str]:
    """The AWS hook's ``cfcr_provider_id`` with the SDKs' metadata variable set to ``imds_url``."""
    from cfcr.node.userdata import identity_script

    (tmp_path / "identity.sh").write_text(identity_script(AwsNodeHook(region="eu-west-1").provider_id_command()))
    return subprocess.run(["bash", "-c", f"set -euo pipefail\n. {tmp_path}/identity.sh\ncfcr_provider_id"],
                          capture_output=True, text=True, check=False,
                          env={"PATH": "/usr/bin:/bin", "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds_url})


@needs("curl")
def test_aws_provider_id_comes_from_imdsv2(tmp_path: Path) -> None:
    """The AWS hook's function, run for real against a fake IMDSv2: token first, then the
    zone and the instance id with the token, printed as cloud-provider-aws parses it."""
    imds = _FakeImds()
    try:
        result = _aws_identity(tmp_path, imds.url)
        assert result.returncode == 0, result.stderr
        assert result.stdout == "aws:///eu-west-1b/i-0123456789abcdef0\n"
        assert imds.seen_tokens == [imds.TOKEN, imds.TOKEN], "both metadata reads carry the IMDSv2 token"
        assert imds.TOKEN not in result.stderr
    finally:
        imds.close()


@needs("curl")
def test_aws_provider_id_fails_without_imds(tmp_path: Path) -> None:
    result = _aws_identity(tmp_path, "http://127.0.0.1:9")
    assert result.returncode != 0
    assert result.stdout == ""


def test_render_template_fills_the_provider_id_and_caches_it(tmp_path: Path) -> None:
    (tmp_path / "tmpl").write_text("- name: provider-id\n  value: '@PROVIDER_ID@'\n")
    calls = tmp_path / "calls"
    fn = f"cfcr_provider_id() {{ echo x >>{calls}; echo aws:///us-east-1a/i-0abc; }}"
    for _ in range(2):
        result = _bash(f"CFCR_STATE={tmp_path}/state; {fn}; render_template {tmp_path}/tmpl {tmp_path}/out", tmp_path)
        assert result.returncode == 0, result.stderr
        assert (tmp_path / "out").read_text() == "- name: provider-id\n  value: 'aws:///us-east-1a/i-0abc'\n"
    assert calls.read_text() == "x\n", "the second render reads the cached id, not the metadata"
    assert (tmp_path / "state" / "provider-id").read_text() == "aws:///us-east-1a/i-0abc\n"


def test_render_template_refuses_a_missing_or_malformed_provider_id(tmp_path: Path) -> None:
    (tmp_path / "tmpl").write_text("value: '@PROVIDER_ID@'\n")
    for fn in ("cfcr_provider_id() { echo \"i-0abc' injected\"; }", "cfcr_provider_id() { return 1; }", ""):
        result = _bash(f"sleep() {{ :; }}; CFCR_STATE={tmp_path}/state; {fn}\n"
                       f"render_template {tmp_path}/tmpl {tmp_path}/out", tmp_path)
        assert result.returncode != 0, fn
        assert "provider ID" in result.stderr
        assert not (tmp_path / "out").exists()
        assert not (tmp_path / "state" / "provider-id").exists()


def test_join_credentials_are_short_lived_where_the_cloud_can_rotate_them(renders: dict[str, list[tuple[Role, bytes]]]) -> None:
    from cfcr.node.context import join_access

    for case, role, data in _all_roles(renders):
        files = write_files(load(data))
        init = next((d for d in yaml.safe_load_all(files["/etc/cfcr/kubeadm.yaml.tmpl"]["content"])
                     if d.get("kind") == "InitConfiguration"), None)
        env = files["/etc/cfcr/node.env"]["content"]
        rotating = case.startswith(("aws", "gcp", "azure"))  # every cloud's hook has JoinAccess
        assert ("CFCR_JOIN_ROTATION=1" in env) == rotating, (case, role.slug)
        if role.is_control_plane:
            assert init is not None
            assert init["bootstrapTokens"][0]["ttl"] == ("2h0m0s" if rotating else "72h0m0s"), case
            assert ("/etc/systemd/system/cfcr-join-credentials.timer" in files) == rotating, case
            secrets = files["/etc/cfcr/secrets.sh"]["content"]
            assert ("cfcr_secret_store()" in secrets) == rotating, case
        else:
            assert "cfcr_secret_store()" not in files["/etc/cfcr/secrets.sh"]["content"], "workers store nothing"
    from cfcr.aws.node_hook import AwsNodeHook

    assert join_access(AwsNodeHook("us-east-1")) is not None
    from cfcr.gcp.node_hook import GcpNodeHook

    assert join_access(GcpNodeHook(project="p", cluster="c1")) is not None
    assert join_access(AzureNodeHook(cluster="c1")) is not None


def test_scripts_travel_without_comments_but_whole(tmp_path: Path) -> None:
    from cfcr.node.userdata import strip_comments

    script = ("#!/bin/bash\n# a comment\n\nset -eu  # trailing\n# shellcheck source=/dev/null\n"
              "cat <<EOF\n# kept: inside a here-document\nEOF\n  # indented comment\necho done\n")
    stripped = strip_comments(script)
    assert stripped == ("#!/bin/bash\nset -eu  # trailing\n# shellcheck source=/dev/null\n"
                        "cat <<EOF\n# kept: inside a here-document\nEOF\necho done\n")
    path = tmp_path / "s.sh"
    path.write_text(stripped)
    assert subprocess.run(["bash", str(path)], capture_output=True, text=True).stdout == "# kept: inside a here-document\ndone\n"


def test_every_aws_role_leaves_room_under_the_user_data_limit(renders: dict[str, list[tuple[Role, bytes]]]) -> None:
    """AWS takes 16,384 bytes; every role keeps 2 KB free for what the next change adds (a
    role that needs more must move to a stub that fetches the rest)."""
    for case, role, data in _all_roles(renders):
        if case.startswith("aws"):
            assert len(data) <= cloud_user_data_limit("aws") - 2048, (case, role.slug, len(data))
