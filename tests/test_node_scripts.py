"""The node scripts (cfcr/node/scripts) and Python write each node path once.

Python defines the paths (cfcr/node/paths.py and the renderers' constants); the scripts receive
every one they use as a ``CFCR_*`` variable of ``node.env`` (``node_env``). Two paths cannot
come that way, because they are how a script finds ``lib.sh`` and ``node.env``: the scripts spell
them out, and these tests hold the literals equal to paths.py's constants. Then: no script
hard-codes a path Python defines, every ``CFCR_*`` variable a control-plane script reads is
defined, and maintain.sh's steps, sourced with a rendered ``node.env``, decide what restarts as
the literal paths did.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from cfcr.channels import resolve
from cfcr.node import Role, paths
from cfcr.node.userdata import node_env, node_files, strip_comments
from test_node_userdata import make_ctx, make_hook, make_spec

SCRIPTS = Path(__file__).resolve().parents[1] / "cfcr" / "node" / "scripts"
SOURCES = {p.name: p.read_text() for p in sorted(SCRIPTS.glob("*.sh"))}
RUN_ON_CONTROL_PLANE_ONLY = ("member.sh", "maintain.sh", "join-credentials.sh", "etcd-backup.sh")

SOURCE_LIB = re.compile(r"^\s*\.\s+(\S*/lib\.sh)\s*$", re.M)
"""A script sourcing lib.sh: ``. /usr/local/lib/cfcr/lib.sh``."""
ETC_ASSIGNMENT = re.compile(r"^CFCR_ETC=(\S+)$", re.M)
"""lib.sh's one literal directory: where node.env (sourced as ``$CFCR_ETC/node.env``) is."""


def _env(role: Role) -> dict[str, str]:
    """``node.env`` of ``role`` in a 3-member AWS cluster, as variable -> value."""
    spec = make_spec("aws", 3)
    text = node_env(spec, resolve(spec.kubernetes.version), make_ctx(spec), role, "amd64", rotates=True)
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key] = value.strip("'")
    return out


CONTROL_PLANE_ENV = _env(Role.control_plane(0))
WORKER_ENV = _env(Role.worker("default"))


def python_paths() -> dict[str, str]:
    """Every absolute path Python gives the scripts: paths.py's constants and node.env's values."""
    out = {name: value for name, value in vars(paths).items()
           if name.isupper() and isinstance(value, str) and value.startswith("/")}
    for env in (CONTROL_PLANE_ENV, WORKER_ENV):
        out.update({name: value for name, value in env.items() if value.startswith("/")})
    return out


def without_sourcing_literals(text: str) -> str:
    """A script as it runs (comments gone) without the two literals it may hold: the line that
    sources lib.sh, and lib.sh's ``CFCR_ETC=`` line."""
    text = SOURCE_LIB.sub("", strip_comments(text))
    return ETC_ASSIGNMENT.sub("", text)


def hard_coded(text: str) -> list[tuple[str, str]]:
    """(constant, path) of every Python path ``text`` spells out, alone or as the start of a
    longer path (``/etc/kubernetes/admin.conf`` hard-codes ``/etc/kubernetes``)."""
    body = without_sourcing_literals(text)
    return sorted((name, value) for name, value in python_paths().items()
                  if re.search(rf"(?<![\w.-]){re.escape(value)}(?![\w.-])", body))


# --------------------------------------------------------------------------- the two literals


def test_every_script_sources_lib_sh_at_the_paths_constant() -> None:
    sourcing = {name: SOURCE_LIB.findall(text) for name, text in SOURCES.items()}
    assert {n for n, found in sourcing.items() if found} == {
        "bootstrap.sh", "maintain.sh", "join-credentials.sh", "etcd-backup.sh"}, sourcing
    for name, found in sourcing.items():
        assert all(literal == paths.LIB_SCRIPT_PATH for literal in found), (name, found)
    # and Python writes lib.sh there
    spec = make_spec("aws", 3)
    files = node_files(spec, resolve(spec.kubernetes.version), make_ctx(spec), Role.worker("default"),
                       make_hook("aws"))
    assert paths.LIB_SCRIPT_PATH in files and paths.NODE_ENV_PATH in files


def test_lib_sh_finds_node_env_at_the_paths_constant() -> None:
    lib = SOURCES["lib.sh"]
    assert ETC_ASSIGNMENT.findall(lib) == [paths.CFCR_ETC_DIR]
    assert '. "$CFCR_ETC/node.env"' in lib
    assert paths.NODE_ENV_PATH == f"{paths.CFCR_ETC_DIR}/node.env"
    # no other script names the directory: everything else in it comes from node.env
    assert not [name for name, text in SOURCES.items()
                if name != "lib.sh" and re.search(r"\$\{?CFCR_ETC\b", without_sourcing_literals(text))]
    assert re.findall(r"\$\{?CFCR_ETC\b.*", SOURCES["lib.sh"]) == ['$CFCR_ETC/node.env"']


# --------------------------------------------------------------------------- nothing else spelt out


def test_no_script_hard_codes_a_path_python_defines() -> None:
    found = {name: hard_coded(text) for name, text in SOURCES.items()}
    assert not any(found.values()), {n: f for n, f in found.items() if f}


@pytest.mark.parametrize("line", [
    'chmod 0600 /etc/kubernetes/*.conf "$CFCR_KUBELET_DIR/config.yaml"',
    "kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes",
    'install -D -m 0755 "$file" /usr/local/sbin/runc',
    "done </etc/modules-load.d/cfcr.conf",
    '. "/etc/cfcr/secrets.sh"',
    'date >"/var/lib/cfcr/bootstrapped"',
])
def test_the_scan_finds_a_hard_coded_path(line: str) -> None:
    assert hard_coded(SOURCES["bootstrap.sh"] + line + "\n"), line


def test_the_scan_leaves_what_is_not_a_python_path() -> None:
    assert not hard_coded("#!/bin/bash\n# /etc/kubernetes/admin.conf in a comment\nsed -i x /etc/fstab\n"
                          "echo /etc/kubernetes-other /var/lib/cfcr-harness\n")


# --------------------------------------------------------------------------- every variable defined


def _referenced(text: str) -> set[str]:
    return set(re.findall(r"\$\{?(CFCR_[A-Z0-9_]+)", strip_comments(text)))


def test_every_variable_the_control_plane_scripts_read_is_defined() -> None:
    """What a member's scripts read comes from its node.env, lib.sh, secrets.sh (``CFCR_SECRETS``)
    or backup.sh (``CFCR_BACKUP_PREFIX``), or has a default in the script."""
    lib_defined = set(re.findall(r"^(CFCR_[A-Z0-9_]+)=", SOURCES["lib.sh"], re.M))
    defaulted = {v for text in SOURCES.values() for v in re.findall(r"\$\{(CFCR_[A-Z0-9_]+):-", text)}
    defined = set(CONTROL_PLANE_ENV) | lib_defined | defaulted | {"CFCR_SECRETS", "CFCR_BACKUP_PREFIX"}
    missing = {name: sorted(_referenced(text) - defined) for name, text in SOURCES.items()}
    assert not any(missing.values()), missing


def test_a_workers_node_env_has_every_path_but_the_control_planes() -> None:
    control_plane_only = {"CFCR_SIGNING_CA", "CFCR_ETCD_PKI_DIR", "CFCR_MANIFESTS_DIR", "CFCR_LIB_DIR",
                          "CFCR_BACKUP_HOOK", "CFCR_BACKUP_TIMER_FILE"}
    cp_paths = {k for k, v in CONTROL_PLANE_ENV.items() if v.startswith("/")} - {"CFCR_ETCD_DEVICE"}
    worker_paths = {k for k, v in WORKER_ENV.items() if v.startswith("/")}
    assert worker_paths == cp_paths - control_plane_only
    # what lib.sh's load_node_facts and a worker's boot read outside the control plane's branches
    for name in ("CFCR_SECRETS_SCRIPT", "CFCR_IDENTITY_SCRIPT", "CFCR_JOIN_ACCESS_SCRIPT", "CFCR_BIN_DIR",
                 "CFCR_STATE", "CFCR_PKI_DIR", "CFCR_KUBERNETES_DIR", "CFCR_KUBELET_DIR", "CFCR_ARTIFACTS_LIST",
                 "CFCR_MODULES_LOAD", "CFCR_RUNC"):
        assert name in WORKER_ENV, name


def test_node_env_names_the_paths_pythons_constants_hold() -> None:
    from cfcr.node.backup import BACKUP_HOOK_PATH
    from cfcr.node.host import MODULES_LOAD_PATH
    from cfcr.node.packages import ARTIFACTS_LIST_PATH, BIN_DIR
    from cfcr.node.userdata import IDENTITY_SCRIPT_PATH, JOIN_ACCESS_SCRIPT_PATH, SECRETS_SCRIPT_PATH

    assert {k: CONTROL_PLANE_ENV[k] for k in (
        "CFCR_STATE", "CFCR_PKI_DIR", "CFCR_ETCD_PKI_DIR", "CFCR_KUBERNETES_DIR", "CFCR_KUBELET_DIR",
        "CFCR_MANIFESTS_DIR", "CFCR_LIB_DIR", "CFCR_RUNC", "CFCR_BIN_DIR", "CFCR_ARTIFACTS_LIST", "CFCR_MODULES_LOAD",
        "CFCR_SECRETS_SCRIPT", "CFCR_IDENTITY_SCRIPT", "CFCR_JOIN_ACCESS_SCRIPT", "CFCR_BACKUP_HOOK")} == {
        "CFCR_STATE": paths.CFCR_STATE_DIR, "CFCR_PKI_DIR": paths.PKI_DIR, "CFCR_ETCD_PKI_DIR": paths.ETCD_PKI_DIR,
        "CFCR_KUBERNETES_DIR": paths.KUBERNETES_DIR, "CFCR_KUBELET_DIR": paths.KUBELET_DIR,
        "CFCR_MANIFESTS_DIR": paths.MANIFESTS_DIR, "CFCR_LIB_DIR": paths.LIB_DIR, "CFCR_RUNC": paths.RUNC_PATH,
        "CFCR_BIN_DIR": BIN_DIR, "CFCR_ARTIFACTS_LIST": ARTIFACTS_LIST_PATH, "CFCR_MODULES_LOAD": MODULES_LOAD_PATH,
        "CFCR_SECRETS_SCRIPT": SECRETS_SCRIPT_PATH, "CFCR_IDENTITY_SCRIPT": IDENTITY_SCRIPT_PATH,
        "CFCR_JOIN_ACCESS_SCRIPT": JOIN_ACCESS_SCRIPT_PATH, "CFCR_BACKUP_HOOK": BACKUP_HOOK_PATH}


# --------------------------------------------------------------------------- maintain.sh's steps


def _maintain(tmp_path: Path, script: str) -> subprocess.CompletedProcess[str]:
    """``script`` after sourcing lib.sh, the member's rendered node.env and maintain.sh (its
    lib.sh line pointed at this checkout's): sourcing runs no step."""
    spec = make_spec("aws", 3)
    (tmp_path / "node.env").write_text(node_env(spec, resolve(spec.kubernetes.version), make_ctx(spec),
                                                Role.control_plane(0), "amd64"))
    maintain = SOURCES["maintain.sh"].replace(f". {paths.LIB_SCRIPT_PATH}\n", f". {SCRIPTS / 'lib.sh'}\n")
    (tmp_path / "maintain.sh").write_text(maintain)
    program = f"set -euo pipefail\n. {tmp_path}/node.env\n. {tmp_path}/maintain.sh\n{script}"
    return subprocess.run(["bash", "-c", program], capture_output=True, text=True, check=False)


AFFECTS = {
    f"{paths.ETCD_PKI_DIR}/ca.crt": "etcd kube-apiserver",
    f"{paths.ETCD_PKI_DIR}/ca.key": "etcd kube-apiserver",
    f"{paths.ETCD_PKI_DIR}/server.crt": "etcd",
    f"{paths.PKI_DIR}/apiserver-etcd-client.key": "kube-apiserver",
    f"{paths.PKI_DIR}/ca.crt": "kube-apiserver kube-controller-manager",
    f"{paths.PKI_DIR}/sa.key": "kube-apiserver kube-controller-manager",
    f"{paths.PKI_DIR}/front-proxy-ca.crt": "kube-apiserver",
    f"{paths.SECRETS_DIR}/encryption-key": "kube-apiserver",
    f"{paths.KUBERNETES_DIR}/controller-manager.conf": "kube-controller-manager",
    f"{paths.KUBERNETES_DIR}/scheduler.conf": "kube-scheduler",
    f"{paths.KUBERNETES_DIR}/kubelet.conf": "kubelet",
    f"{paths.KUBELET_DIR}/pki/kubelet-client-current.pem": "kubelet",
    f"{paths.KUBERNETES_DIR}/admin.conf": "",
    f"{paths.KUBERNETES_DIR}/super-admin.conf": "",
    f"{paths.SECRETS_DIR}/bootstrap-token": "",
}
"""A changed file -> what maintain.sh restarts to read it (the literal paths' cases before node.env
named them)."""


@pytest.mark.parametrize("path", sorted(AFFECTS))
def test_maintain_restarts_what_reads_a_changed_file(tmp_path: Path, path: str) -> None:
    out = _maintain(tmp_path, f'affects {path}\nprintf "%s\\n" "${{!restart[@]}}" | sort | xargs')
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == AFFECTS[path], path


def test_sourcing_maintain_runs_no_step(tmp_path: Path) -> None:
    out = _maintain(tmp_path, 'echo "stage=[$stage] window=$window restart=${#restart[@]} staged=${#staged[@]}"')
    assert out.returncode == 0, out.stderr
    assert out.stdout == "stage=[] window=0 restart=0 staged=0\n" and out.stderr == ""
    assert SOURCES["maintain.sh"].rstrip().endswith('if [[ ${BASH_SOURCE[0]} == "$0" ]]; then\n  main "$@"\nfi')


def test_delivered_scripts_run_on_a_member_whose_node_env_predates_them(tmp_path: Path) -> None:
    """A delivered script reaches a running member (daily maintenance) before the member is
    replaced with new user-data: it carries every node path variable as a default, so an older
    node.env that lacks one does not stop it under ``set -u``, and a node.env that has it wins."""
    from cfcr.node.delivered import script_text
    from cfcr.node.userdata import control_plane_path_variables, node_path_variables

    expected = {**node_path_variables(), **control_plane_path_variables()}
    for name in ("maintain.sh", "member.sh", "join-credentials.sh", "etcd-backup.sh"):
        lines = script_text(name).splitlines()
        header = [line for line in lines[1:] if line.startswith(': "${CFCR_')]
        assert header == lines[1:1 + len(header)], name  # right after the shebang
        probe = "\n".join(["set -eu", *header, *(f'printf "%s=%s\\n" {v} "${v}"' for v in expected)])
        out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
        assert out.returncode == 0, (name, out.stderr)
        assert dict(line.split("=", 1) for line in out.stdout.splitlines()) == expected, name
        # an existing value (node.env's) is kept
        kept = subprocess.run(["bash", "-c", "\n".join(["set -eu", *header, 'echo "$CFCR_PKI_DIR"'])],
                              capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "CFCR_PKI_DIR": "/x"})
        assert kept.stdout.strip() == "/x", name


# --------------------------------------------------------------------------- member.sh's guard

FAKE_CURL = """#!/bin/bash
# Answers as $CURL_ANSWERS says (URL prefix -> HTTP status; no entry: no connection) and
# records every URL asked.
url=${@: -1}
echo "$url" >>"$CURL_LOG"
for pair in $CURL_ANSWERS; do
  if [[ $url == "${pair%%=*}"* ]]; then
    for arg in "$@"; do [ "$arg" = "%{http_code}" ] && printf '%s' "${pair#*=}"; done
    exit 0
  fi
done
for arg in "$@"; do [ "$arg" = "%{http_code}" ] && printf '000'; done
exit 7
"""


def _membership(tmp_path: Path, answers: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """member.sh's ``etcd_membership`` on a blank member 0 of a 3-member cluster whose etcd
    peers do not answer, with curl answering only ``answers`` (URL prefix -> HTTP status)."""
    spec = make_spec("aws", 3)
    (tmp_path / "node.env").write_text(node_env(spec, resolve(spec.kubernetes.version), make_ctx(spec),
                                                Role.control_plane(0), "amd64"))
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "curl").write_text(FAKE_CURL)
    (tmp_path / "bin" / "curl").chmod(0o755)
    program = (f"set -euo pipefail\n. {SCRIPTS / 'lib.sh'}\n. {tmp_path}/node.env\n"
               f"CFCR_ETCD_DATA_DIR={tmp_path}/etcd CFCR_STATE={tmp_path} ETCD_PEER_TRIES=1\n"
               f". {SCRIPTS / 'member.sh'}\netcd_membership\necho new=$ETCD_NEW_CLUSTER")
    env = {"PATH": f"{tmp_path}/bin:/usr/bin:/bin", "CURL_LOG": str(tmp_path / "curl.log"),
           "CURL_ANSWERS": " ".join(f"{k}={v}" for k, v in answers.items())}
    out = subprocess.run(["bash", "-c", program], capture_output=True, text=True, check=False, env=env)
    return out, (tmp_path / "curl.log").read_text().split()


def test_a_blank_member_with_no_peer_and_no_api_answering_starts_the_new_cluster(tmp_path: Path) -> None:
    out, asked = _membership(tmp_path, {})
    assert out.returncode == 0 and out.stdout.strip() == "new=1", out.stderr
    env = dict(line.split("=", 1) for line in (tmp_path / "node.env").read_text().splitlines()
               if line and not line.startswith("#"))
    members = [u.strip("'").removeprefix("https://").rsplit(":", 1)[0]
               for u in env["CFCR_ETCD_CLIENT_URLS"].strip("'").split(",")]
    api = env["CFCR_API_SERVER"].strip("'")
    # the load balancer and both other members' own API servers were asked, not this member's
    assert [u for u in asked if u.endswith("/readyz")] == [
        f"{api}/readyz", *(f"https://{m}:{env['CFCR_API_PORT']}/readyz" for m in members[1:])]


@pytest.mark.parametrize("who", ["load balancer", "another member"])
def test_a_blank_member_refuses_a_second_cluster_when_an_api_server_answers(tmp_path: Path, who: str) -> None:
    """A member that reaches no etcd peer but some API server (at the load balancer, or, where
    the API name leads back to the member itself, at another member's address) stops."""
    spec = make_spec("aws", 3)
    ctx = make_ctx(spec)
    url = (ctx.api_server_url if who == "load balancer"
           else f"https://{ctx.control_plane_members[2].address}:{ctx.api_port}")
    out, _ = _membership(tmp_path, {url: "401"})
    assert out.returncode == 1 and "new=" not in out.stdout
    assert f"but the API at {url} does" in out.stderr and "it will not start a second cluster" in out.stderr


FAKE_KUBEADM = """#!/bin/bash
# the first attempt hangs (a request the API accepted and never answered); the next one ends
n=$(( $(cat "$KUBEADM_CALLS" 2>/dev/null || echo 0) + 1 ))
echo "$n" >"$KUBEADM_CALLS"
echo "attempt $n: $*" >>"$KUBEADM_LOG"
[ "$n" -gt 1 ] || exec sleep 120
"""


def test_a_hung_kubeadm_is_stopped_and_tried_again(tmp_path: Path) -> None:
    """bootstrap.sh's run_kubeadm stops an attempt after KUBEADM_TIMEOUT seconds (kubeadm's
    waits end, a request an API server accepted and never answered does not) and tries again
    as after a failure: with the retry's preflight ignores and the secrets fetched again."""
    source = SOURCES["bootstrap.sh"]
    function = re.search(r"^KUBEADM_TIMEOUT=.*?^}\n", source, re.M | re.S)
    assert function is not None, "bootstrap.sh defines KUBEADM_TIMEOUT before run_kubeadm"
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "kubeadm").write_text(FAKE_KUBEADM)
    (tmp_path / "bin" / "kubeadm").chmod(0o755)
    program = (f"set -euo pipefail\n. {SCRIPTS / 'lib.sh'}\n"
               f"CFCR_KUBERNETES_DIR={tmp_path} CFCR_ROLE=control-plane CFCR_MEMBER=m0 CFCR_NODE_NAME=n0 "
               f"CFCR_KUBEADM_CONFIG={tmp_path}/kubeadm.yaml CFCR_RETRY_PREFLIGHT=Port-6443,DirAvailable\n"
               "sleep() { :; }\nfetch_all_secrets() { echo fetched >>\"$KUBEADM_LOG\"; }\nrender_configs() { :; }\n"
               f"{function.group(0)}run_kubeadm\n")
    env = {"PATH": f"{tmp_path}/bin:/usr/bin:/bin", "KUBEADM_TIMEOUT": "1",
           "KUBEADM_CALLS": str(tmp_path / "calls"), "KUBEADM_LOG": str(tmp_path / "log")}
    out = subprocess.run(["bash", "-c", program], capture_output=True, text=True, check=False, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "kubeadm init did not end within 1s: stopped" in out.stderr
    assert (tmp_path / "log").read_text().splitlines() == [
        f"attempt 1: init --config {tmp_path}/kubeadm.yaml",
        "fetched",
        f"attempt 2: init --config {tmp_path}/kubeadm.yaml --ignore-preflight-errors=Port-6443,DirAvailable",
    ]
