"""A user's mistake on the ``cfcr`` command line is one line on stderr naming the file, key or
endpoint, exit code 2, never a traceback; and every case fails before anything is rendered.

Each case runs the real command in a subprocess (``python -m cfcr``), in a scratch project
directory where the case writes its broken files.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cfcr.config import InputError, find_stack, list_stacks
from cfcr.config.overrides import apply

ROOT = Path(__file__).resolve().parents[1]

GOOD_STACK = "config:\n  cfcr:cloud: aws\n  cfcr:region: us-east-1\n"
KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: here, context: {cluster: c, user: u}}]
current-context: here
"""

# (id, argv with {tmp} for the scratch dir, files to write under {tmp}, words stderr must hold)
CASES: list[tuple[str, list[str], dict[str, str], list[str]]] = [
    ("unknown stack", ["render", "--stack", "nope", "--out", "{tmp}/out"], {},
     ["--stack nope", "Pulumi.nope.yaml", "aws-stable"]),
    ("unknown stack in project", ["render", "--stack", "nope", "--project-dir", "{tmp}", "--out", "{tmp}/out"],
     {"stacks/Pulumi.mine.yaml": GOOD_STACK}, ["Pulumi.nope.yaml", "stacks there: mine"]),
    ("missing project dir", ["render", "--stack", "x", "--project-dir", "{tmp}/missing", "--out", "{tmp}/out"], {},
     ["--project-dir", "missing", "no such directory"]),
    ("stack file with a tab", ["render", "--stack", "tab", "--project-dir", "{tmp}", "--out", "{tmp}/out"],
     {"stacks/Pulumi.tab.yaml": "config:\n\tcfcr:cloud: aws\n"},
     ["Pulumi.tab.yaml", "line 2, column 1", "not valid YAML"]),
    ("stack file YAML syntax", ["check", "--stack", "bad", "--project-dir", "{tmp}", "--policy-pack", "policy"],
     {"Pulumi.bad.yaml": "config:\n  cfcr:cloud: [aws\n  cfcr:region: x\n"}, ["Pulumi.bad.yaml", "line 3", "not valid YAML"]),
    ("stack file not a mapping", ["upgrade-plan", "--stack", "list", "--project-dir", "{tmp}"],
     {"stacks/Pulumi.list.yaml": "- a\n- b\n"}, ["Pulumi.list.yaml", "found a list", "mapping"]),
    ("stack config not a mapping", ["flows", "--stack", "{tmp}/Pulumi.cfg.yaml"],
     {"Pulumi.cfg.yaml": "config: [1, 2]\n"}, ["Pulumi.cfg.yaml", "`config` is a list"]),
    ("stack keys without config:", ["render", "--stack", "{tmp}/Pulumi.flat.yaml", "--out", "{tmp}/out"],
     {"Pulumi.flat.yaml": "cfcr:cloud: aws\ncfcr:region: us-east-1\n"},
     ["Pulumi.flat.yaml", "no `config:` key", "cfcr:cloud, cfcr:region"]),
    ("stack path missing", ["render", "--stack", "{tmp}/Pulumi.gone.yaml", "--out", "{tmp}/out"], {},
     ["Pulumi.gone.yaml", "no such file"]),
    ("Pulumi.yaml not YAML", ["render", "--stack", "x", "--project-dir", "{tmp}", "--out", "{tmp}/out"],
     {"Pulumi.yaml": "name: [x\n"}, ["Pulumi.yaml", "line 2", "not valid YAML"]),
    ("unknown config key", ["render", "--stack", "typo", "--project-dir", "{tmp}", "--out", "{tmp}/out"],
     {"stacks/Pulumi.typo.yaml": GOOD_STACK + "  cfcr:clod: aws\n"}, ["cfcr:clod", "unknown key"]),
    ("wrong type", ["etcd-restore", "--stack", "wt", "--project-dir", "{tmp}"],
     {"stacks/Pulumi.wt.yaml": GOOD_STACK + "  cfcr:controlPlane: {count: many}\n"},
     ["cfcr:controlPlane.count", "'many'"]),
    ("--config without =", ["render", "--stack", "aws-stable", "--out", "{tmp}/out", "--config", "controlPlane"], {},
     ["--config 'controlPlane'", "KEY=VALUE"]),
    ("--config unknown key", ["check", "--stack", "aws-stable", "--policy-pack", "policy", "--config", "contrlPlane.count=1"],
     {}, ["cfcr:contrlPlane", "did you mean 'controlPlane'"]),
    ("--config value not YAML", ["render", "--stack", "aws-stable", "--out", "{tmp}/out", "--config", "controlPlane={count"],
     {}, ["--config controlPlane", "not valid YAML"]),
    ("--config value of the wrong type", ["render", "--stack", "aws-stable", "--out", "{tmp}/out",
                                          "--config", "controlPlane.count=abc"], {}, ["cfcr:controlPlane.count", "'abc'"]),
    ("--config no such pool", ["render", "--stack", "aws-stable", "--out", "{tmp}/out", "--config", "nodePools[5].minSize=1"],
     {}, ["nodePools[5].minSize", "cfcr:nodePools has 1 entries"]),
    ("region not of the cloud", ["render", "--stack", "aws-stable", "--out", "{tmp}/out", "--config", "region=us-east-9"],
     {}, ["cfcr:region", "'us-east-9'", "not an AWS region", "did you mean 'us-east-", "pulumi_aws.Region"]),
    ("region of another cloud", ["render", "--stack", "gcp-stable", "--out", "{tmp}/out", "--config", "region=westeurope"],
     {}, ["cfcr:region", "not a GCP region", "cloud.google.com"]),
    ("provider region disagrees", ["render", "--stack", "aws-stable", "--out", "{tmp}/out",
                                   "--config", "aws:region=us-west-2"], {}, ["aws:region", "'us-west-2'", "cfcr:region"]),
    ("azure location disagrees", ["render", "--stack", "azure-stable", "--out", "{tmp}/out",
                                  "--config", "azure-native:location=eastus"],
     {}, ["azure-native:location", "'eastus'", "westeurope"]),
    ("render --out is a file", ["render", "--stack", "aws-stable", "--out", "{tmp}/file"], {"file": "x"},
     ["--out", "/file", "directory"]),
    ("missing policy pack", ["check", "--stack", "aws-stable", "--policy-pack", "{tmp}/nopack"], {},
     ["--policy-pack", "nopack", "no such directory"]),
    ("policy config not JSON", ["check", "--stack", "aws-stable", "--policy-pack", "policy", "--policy-config",
                                "{tmp}/policy.json"], {"policy.json": "{\"a\": 1,\n oops}\n"},
     ["--policy-config", "policy.json", "line 2", "not valid JSON"]),
    ("policy config missing", ["check", "--stack", "aws-stable", "--policy-pack", "policy", "--policy-config",
                               "{tmp}/none.json"], {}, ["--policy-config", "none.json", "no such file"]),
    ("smoke without the kubeconfig", ["smoke", "--kubeconfig", "{tmp}/kc-missing"], {}, ["--kubeconfig", "kc-missing"]),
    ("smoke kubeconfig not YAML", ["smoke", "--kubeconfig", "{tmp}/kc"], {"kc": "apiVersion: v1\n\tkind: Config\n"},
     ["--kubeconfig", "/kc", "line 2", "not valid YAML"]),
    ("smoke kubeconfig without contexts", ["smoke", "--kubeconfig", "{tmp}/kc"], {"kc": "just text\n"},
     ["--kubeconfig", "/kc", "not a kubeconfig"]),
    ("smoke no such context", ["smoke", "--kubeconfig", "{tmp}/kc", "--context", "nope"], {"kc": KUBECONFIG},
     ["--context nope", "contexts there: here"]),
    ("smoke unreachable API", ["smoke", "--kubeconfig", "{tmp}/kc"], {"kc": KUBECONFIG},
     ["cfcr: smoke: cannot reach the API at https://127.0.0.1:1 (connection refused)"]),
    ("flows --render not a render", ["flows", "--stack", "aws-stable", "--render", "{tmp}"], {}, ["--render", "resources.json"]),
    ("channels unknown release", ["channels", "0.9.9"], {}, ["0.9.9"]),
    ("upgrade-plan --to bad version", ["upgrade-plan", "--stack", "aws-stable", "--to", "9.99.1"], {}, ["upgrade-plan", "'9.99.1'", "1.36"]),
    ("etcd-restore half options", ["etcd-restore", "--stack", "aws-stable", "--snapshot-url", "https://x/s.db"], {},
     ["--snapshot-url given alone", "--out"]),
    ("stacks of a missing project", ["stacks", "--project-dir", "{tmp}/missing"], {}, ["--project-dir", "missing"]),
]


def run_cfcr(argv: list[str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "cfcr", *argv], cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False, env=env)


@pytest.mark.parametrize(("argv", "files", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_user_mistake_is_one_line(tmp_path: Path, argv: list[str], files: dict[str, str], words: list[str]) -> None:
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    proc = run_cfcr([a.replace("{tmp}", str(tmp_path)) for a in argv])
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert lines[0].startswith("cfcr: ")
    assert not (tmp_path / "out").exists()  # failed before anything was rendered


def test_case_table_is_large_enough() -> None:
    assert len(CASES) >= 20 and len({c[0] for c in CASES}) == len(CASES)


def test_stack_file_lookup(tmp_path: Path) -> None:
    """Pulumi.yaml's stackConfigDir first, then stacks/, then the project dir; a path is a file."""
    (tmp_path / "conf").mkdir()
    (tmp_path / "stacks").mkdir()
    (tmp_path / "conf" / "Pulumi.a.yaml").write_text(GOOD_STACK)
    (tmp_path / "stacks" / "Pulumi.a.yaml").write_text(GOOD_STACK)
    (tmp_path / "stacks" / "Pulumi.b.yaml").write_text(GOOD_STACK)
    (tmp_path / "Pulumi.c.yaml").write_text(GOOD_STACK)
    assert find_stack("a", tmp_path).path == tmp_path / "stacks" / "Pulumi.a.yaml"
    (tmp_path / "Pulumi.yaml").write_text("name: mine\nruntime: python\nstackConfigDir: conf\n")
    assert find_stack("a", tmp_path).path == tmp_path / "conf" / "Pulumi.a.yaml"
    assert find_stack("c", tmp_path).path == tmp_path / "Pulumi.c.yaml"
    assert [r.name for r in list_stacks(tmp_path)] == ["a", "b", "c"]
    ref = find_stack(str(tmp_path / "stacks" / "Pulumi.b.yaml"))
    assert (ref.name, ref.path) == ("b", tmp_path / "stacks" / "Pulumi.b.yaml")
    with pytest.raises(InputError, match="stacks there: a, b, c"):
        find_stack("d", tmp_path)


def test_stack_path_and_project_dir_on_the_command_line(tmp_path: Path) -> None:
    """A stack file of the user's own, by path and by name from a project dir or the cwd."""
    (tmp_path / "stacks").mkdir()
    (tmp_path / "stacks" / "Pulumi.mine.yaml").write_text(GOOD_STACK + "  cfcr:cni: cilium\n")
    by_path = run_cfcr(["upgrade-plan", "--stack", str(tmp_path / "stacks" / "Pulumi.mine.yaml")])
    by_name = run_cfcr(["upgrade-plan", "--stack", "mine", "--project-dir", str(tmp_path)])
    assert by_path.returncode == by_name.returncode == 0, (by_path.stderr, by_name.stderr)
    assert by_path.stdout == by_name.stdout and "stack mine:" in by_path.stdout and "cfcr-mine" in by_path.stdout
    listing = run_cfcr(["stacks", "--project-dir", str(tmp_path)])
    assert listing.returncode == 0 and listing.stdout.split()[:3] == ["mine", "aws", "us-east-1"]
    assert "cni=cilium" in listing.stdout and "members=3" in listing.stdout
    # the current directory is the default project when it is a cfcr program
    (tmp_path / "Pulumi.yaml").write_text("name: platform\nruntime: python\n")
    (tmp_path / "__main__.py").write_text("from cfcr import program\n")
    here = run_cfcr(["stacks"], cwd=tmp_path)
    assert here.stdout.split()[:1] == ["mine"], here.stdout + here.stderr


def test_stacks_lists_every_stack_of_the_project() -> None:
    proc = run_cfcr(["stacks", "--project-dir", str(ROOT)])
    assert proc.returncode == 0, proc.stderr
    names = [line.split()[0] for line in proc.stdout.splitlines()]
    assert names == sorted(p.name[len("Pulumi."):-len(".yaml")] for p in (ROOT / "stacks").glob("Pulumi.*.yaml"))
    assert "aws-stable     aws   us-east-1" in proc.stdout


def test_config_overrides_set_nested_keys_where_errors_name_them() -> None:
    config = {"cfcr:controlPlane": {"count": 3, "zones": ["us-east-1a"]}, "nodePools": [{"name": "a", "minSize": 1}],
              "aws:region": "us-east-1"}
    out = apply(config, ["cfcr:controlPlane.count=1", "nodePools[0].minSize=2", "aws:region=eu-west-1",
                         "tags.team=x", "cni=cilium"])
    assert out["cfcr:controlPlane"] == {"count": 1, "zones": ["us-east-1a"]}
    assert out["nodePools"] == [{"name": "a", "minSize": 2}] and "cfcr:nodePools" not in out
    assert out["aws:region"] == "eu-west-1" and out["cfcr:tags"] == {"team": "x"} and out["cfcr:cni"] == "cilium"
    assert config["cfcr:controlPlane"]["count"] == 3  # the input is left alone
    with pytest.raises(InputError, match=r"cfcr:cni is a str, not a mapping"):
        apply(out, ["cni.mode=x"])


def test_a_reader_that_stops_early_is_not_an_error() -> None:
    import fcntl

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)  # smaller than the output: the writer must wait for us
    proc = subprocess.Popen([sys.executable, "-m", "cfcr", "channels", "--json"], cwd=ROOT, env=env,
                            stdout=write_end, stderr=subprocess.PIPE)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        assert reader.read(10)
    # `| head`: the reader went away with the output unwritten
    err = proc.communicate(timeout=60)[1].decode()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "Broken pipe" not in err, err
