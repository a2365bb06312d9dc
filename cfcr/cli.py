"""The ``cfcr`` command: ``render`` a stack offline, ``check`` it against the policy pack, check its
network ``flows``, print the ``docs`` config reference."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cfcr.config import ConfigError


def _render(args: argparse.Namespace) -> int:
    from cfcr.render import render_stack

    result = render_stack(args.stack, Path(args.out), show_secrets=args.show_secrets)
    roles = ", ".join(sorted(result.user_data)) or "none"
    manifests = sum(1 for f in result.files if "manifests" in f.relative_to(Path(args.out)).parts[:1])
    print(f"rendered stack {args.stack}: {len(result.resources)} resources, user-data for {roles}, "
          f"{manifests} manifests -> {args.out}")
    return 0


def _check(args: argparse.Namespace) -> int:
    import json

    import yaml

    from cfcr.config import read_stack_config
    from cfcr.policy.runner import PolicyConfigError, check_stack

    pack = Path(args.policy_pack)
    if not (pack / "PulumiPolicy.yaml").is_file():
        print(f"cfcr: --policy-pack {pack}: no PulumiPolicy.yaml there", file=sys.stderr)
        return 2
    project_dir = Path(args.project_dir) if args.project_dir else None
    overrides: dict[str, object] = {}
    for item in args.config:
        key, sep, value = item.partition("=")
        if not sep or not key:
            print(f"cfcr: --config {item!r}: expected KEY=VALUE", file=sys.stderr)
            return 2
        overrides[key if ":" in key else f"cfcr:{key}"] = yaml.safe_load(value)  # 3, true, {count: 1}
    stack_config = {**read_stack_config(args.stack, project_dir), **overrides} if overrides else None
    try:
        policy_config = json.loads(Path(args.policy_config).read_text()) if args.policy_config else None
        report = check_stack(args.stack, project_dir=project_dir, stack_config=stack_config,
                             policy_config=policy_config)
    except (PolicyConfigError, OSError, json.JSONDecodeError) as exc:
        print(f"cfcr: invalid policy config: {exc}", file=sys.stderr)
        return 2
    print(f"policy pack {pack} over stack {args.stack}:")
    print(report.format())
    return 1 if report.mandatory else 0


def _flows(args: argparse.Namespace) -> int:
    from cfcr.flows import check_stack

    from cfcr.flows.check import RenderDirError

    project_dir = Path(args.project_dir) if args.project_dir else None
    try:
        report = check_stack(args.stack, project_dir=project_dir,
                             render_dir=Path(args.render) if args.render else None)
    except RenderDirError as exc:
        print(f"cfcr: --render: {exc}", file=sys.stderr)
        return 2
    print(report.format(verbose=args.verbose))
    return 0 if report.ok else 1


def _docs(args: argparse.Namespace) -> int:
    from cfcr.config.docs import config_reference, pulumi_yaml

    print(config_reference() if args.what == "config" else pulumi_yaml(), end="")
    return 0


def _smoke(args: argparse.Namespace) -> int:
    from cfcr.smoke import SmokeOptions, run_smoke
    from cfcr.smoke.kube import KubeApi

    report = run_smoke(KubeApi(args.kubeconfig, args.context),
                       SmokeOptions(timeout=args.timeout, cluster_domain=args.cluster_domain, cni=args.cni))
    print(report.render())
    return 0 if report.passed else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cfcr", description="Kubernetes clusters on AWS, GCP and Azure with Pulumi.")
    sub = parser.add_subparsers(dest="command", required=True)
    render = sub.add_parser("render", help="run the program for a stack offline (mock runtime) and write what it builds")
    render.add_argument("--stack", required=True, help="stack name: reads stacks/Pulumi.<stack>.yaml")
    render.add_argument("--out", required=True, help="directory to write resources.json, nodes/ and manifests/")
    render.add_argument("--show-secrets", action="store_true", help="write secret values instead of \"[secret]\"")
    render.set_defaults(func=_render)
    check = sub.add_parser("check", help="render a stack offline and run the policy pack over it "
                                          "(exit 1 on a mandatory violation)")
    check.add_argument("--stack", required=True, help="stack name: reads <project-dir>/stacks/Pulumi.<stack>.yaml")
    check.add_argument("--policy-pack", required=True, help="the policy pack directory, e.g. policy")
    check.add_argument("--project-dir", help="directory holding stacks/ (default: the cfcr project)")
    check.add_argument("--config", action="append", default=[], metavar="KEY=VALUE",
                       help="override one stack config value (cfcr: namespace unless KEY names one; repeatable)")
    check.add_argument("--policy-config", metavar="FILE",
                       help="JSON policy config, the file `pulumi preview --policy-pack-config` takes")
    check.set_defaults(func=_check)
    flows = sub.add_parser("flows", help="check every network flow the cluster needs against the stack's rendered "
                                          "network (exit 1 if a flow is blocked)")
    flows.add_argument("--stack", required=True, help="stack name: reads <project-dir>/stacks/Pulumi.<stack>.yaml")
    flows.add_argument("--render", metavar="DIR", help="a render of the stack written by `cfcr render --out DIR` "
                                                       "(default: render it now, in memory)")
    flows.add_argument("--project-dir", help="directory holding stacks/ (default: the cfcr project)")
    flows.add_argument("--verbose", "-v", action="store_true", help="also say how each passing flow gets through")
    flows.set_defaults(func=_flows)
    docs = sub.add_parser("docs", help="print documents generated from the config schema")
    docs.add_argument("what", nargs="?", choices=["config", "pulumi-yaml"], default="config",
                      help="config: the README's config reference; pulumi-yaml: the Pulumi.yaml project file")
    docs.set_defaults(func=_docs)
    smoke = sub.add_parser("smoke", help="check a running cluster: nodes, DNS, pod network, Services, policy, logs, exec")
    smoke.add_argument("--kubeconfig", required=True, help="kubeconfig of the cluster (any cluster, not only cfcr's)")
    smoke.add_argument("--context", default=None, help="kubeconfig context; default: the current one")
    smoke.add_argument("--timeout", type=float, default=300.0, help="seconds a pod may take to start (default 300)")
    smoke.add_argument("--cluster-domain", default="cluster.local", help="the cluster's DNS domain")
    smoke.add_argument("--cni", default=None, help="the CNI, if detection should be skipped")
    smoke.set_defaults(func=_smoke)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"cfcr: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
