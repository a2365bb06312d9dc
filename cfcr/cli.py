"""The ``cfcr`` command: ``render`` a stack offline, ``check`` it against the policy pack, check its
network ``flows``, list its ``assets`` (and check an air-gapped render against them), print the ``docs`` config reference, print an ``upgrade-plan``, list the
``channels``, write an ``etcd-restore`` procedure."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cfcr.config import ConfigError


def _render(args: argparse.Namespace) -> int:
    from cfcr.render import render_program, render_stack

    if args.program:  # another Pulumi program (DIR/__main__.py with DIR/Pulumi.<stack>.yaml)
        result = render_program(Path(args.program), args.stack, Path(args.out), show_secrets=args.show_secrets)
    else:
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


def _assets(args: argparse.Namespace) -> int:
    import json

    project_dir = Path(args.project_dir) if args.project_dir else None
    print(f"cfcr assets: rendering stack {args.stack} offline (a few seconds per render)...", file=sys.stderr)
    if args.check:
        from cfcr.assets.check import check_stack as check_airgap

        report = check_airgap(args.stack, project_dir)
        print(json.dumps(report.assets.to_json(), indent=2) if args.json else report.format(), end="\n" if args.json else "")
        if args.json and not report.ok:
            print(report.format(), file=sys.stderr, end="")
        return 0 if report.ok else 1
    from cfcr.assets import stack_assets
    from cfcr.config import read_stack_config

    config = None
    if args.kubernetes_version:
        from cfcr.channels import CHANNELS

        version = CHANNELS.get(args.kubernetes_version, args.kubernetes_version)  # a channel: today's version
        config = {**read_stack_config(args.stack, project_dir), "cfcr:kubernetes": {"version": version}}
    listing = stack_assets(args.stack, project_dir, config)
    print(json.dumps(listing.to_json(), indent=2) if args.json else listing.to_text(), end="\n" if args.json else "")
    return 0


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


def _channels(args: argparse.Namespace) -> int:
    import json

    from cfcr.channels.listing import channel_listing, format_text, listing_json

    listing = channel_listing()
    if args.release:
        from cfcr.channels import UnknownReleaseError, resolve

        try:
            version = resolve(args.release).version
        except UnknownReleaseError as exc:
            print(f"cfcr: {exc}", file=sys.stderr)
            return 2
        listing = [r for r in listing if r.version == version]
    if args.json:
        print(json.dumps(listing_json(listing), indent=2))
    else:
        print(format_text(listing, sources=not args.brief), end="")
    return 0


def _upgrade_plan(args: argparse.Namespace) -> int:
    from cfcr.channels import UpgradePlanError, format_plan, plan_upgrade, resolve
    from cfcr.config import load_stack
    from cfcr.config.topology import control_plane_members

    spec = load_stack(args.stack, Path(args.project_dir) if args.project_dir else None)
    configured = spec.kubernetes.version
    print(f"stack {args.stack}: cfcr:kubernetes.version is {configured} ({resolve(configured).version})")
    try:
        plan = plan_upgrade(args.from_version or configured, args.to or configured,
                            members=[m.name for m in control_plane_members(spec)],
                            pools=[p.name for p in spec.node_pools])
    except UpgradePlanError as exc:
        print(f"cfcr: {exc}", file=sys.stderr)
        return 2
    print(format_plan(plan, cluster=spec.name), end="")
    if not (args.to or args.from_version):
        print("(pass --to VERSION|CHANNEL to plan from the stack's version, or --from the deployed version "
              "to plan to it)")
    return 0 if plan.possible else 1


def _etcd_restore(args: argparse.Namespace) -> int:
    from cfcr.config import load_stack
    from cfcr.etcd_restore import RestoreError, runbook, write_kit

    spec = load_stack(args.stack, Path(args.project_dir) if args.project_dir else None)
    if (args.snapshot_url is None) != (args.out is None):
        print("cfcr: etcd-restore: give --snapshot-url and --out together (or neither, to see the first steps)",
              file=sys.stderr)
        return 2
    try:
        out = Path(args.out) if args.out else None
        if out is not None:
            write_kit(spec, args.snapshot_url, out)
        print(runbook(spec, args.snapshot_url, out, stack=args.stack), end="")
    except RestoreError as exc:
        print(f"cfcr: etcd-restore: {exc}", file=sys.stderr)
        return 2
    return 0


def _stack_options(parser: argparse.ArgumentParser) -> None:
    """``--stack`` and ``--project-dir``: which stack file a command reads, and from where."""
    parser.add_argument("--stack", required=True, help="stack name: reads <project-dir>/stacks/Pulumi.<stack>.yaml")
    parser.add_argument("--project-dir", help="directory holding stacks/ (default: the cfcr project)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cfcr", description="Kubernetes clusters on AWS, GCP and Azure with Pulumi.")
    sub = parser.add_subparsers(dest="command", required=True)
    render = sub.add_parser("render", help="run the program for a stack offline (mock runtime) and write what it builds")
    render.add_argument("--stack", required=True, help="stack name: reads stacks/Pulumi.<stack>.yaml")
    render.add_argument("--out", required=True, help="directory to write resources.json, nodes/ and manifests/")
    render.add_argument("--show-secrets", action="store_true", help="write secret values instead of \"[secret]\"")
    render.add_argument("--program", metavar="DIR", help="render another Pulumi program instead: DIR/__main__.py with "
                                                         "DIR/Pulumi.<stack>.yaml (e.g. examples/platform-program)")
    render.set_defaults(func=_render)
    check = sub.add_parser("check", help="render a stack offline and run the policy pack over it "
                                          "(exit 1 on a mandatory violation)")
    _stack_options(check)
    check.add_argument("--policy-pack", required=True, help="the policy pack directory, e.g. policy")
    check.add_argument("--config", action="append", default=[], metavar="KEY=VALUE",
                       help="override one stack config value (cfcr: namespace unless KEY names one; repeatable)")
    check.add_argument("--policy-config", metavar="FILE",
                       help="JSON policy config, the file `pulumi preview --policy-pack-config` takes")
    check.set_defaults(func=_check)
    flows = sub.add_parser("flows", help="check every network flow the cluster needs against the stack's rendered "
                                          "network (exit 1 if a flow is blocked)")
    _stack_options(flows)
    flows.add_argument("--render", metavar="DIR", help="a render of the stack written by `cfcr render --out DIR` "
                                                       "(default: render it now, in memory)")
    flows.add_argument("--verbose", "-v", action="store_true", help="also say how each passing flow gets through")
    flows.set_defaults(func=_flows)
    assets = sub.add_parser("assets", help="list every file, image, chart and OS package a cluster of the stack "
                                            "fetches, with where its mirrors serve it (docs/airgapped.md)")
    _stack_options(assets)
    assets.add_argument("--json", action="store_true", help="print JSON (files, images, charts, packages) instead of text")
    assets.add_argument("--kubernetes-version", metavar="VERSION|CHANNEL",
                        help="list the assets of the stack at another version (what to mirror before an upgrade)")
    assets.add_argument("--check", action="store_true",
                        help="also render the stack and check it fetches exactly the list through its mirrors and "
                             "names no public origin (exit 1 if not)")
    assets.set_defaults(func=_assets)
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
    chans = sub.add_parser("channels", help="list the channels and what each release pins, with the sources")
    chans.add_argument("release", nargs="?", help="only this channel or exact version (default: every release)")
    chans.add_argument("--json", action="store_true", help="print JSON instead of text")
    chans.add_argument("--brief", action="store_true", help="text without the source of each pin")
    chans.set_defaults(func=_channels)
    upgrade = sub.add_parser("upgrade-plan", help="print the steps that upgrade a stack's cluster, what each rolls "
                                                   "and in which order (exit 1 if the skew policy allows no path)")
    _stack_options(upgrade)
    upgrade.add_argument("--to", metavar="VERSION|CHANNEL",
                         help="where to go (default: the stack's cfcr:kubernetes.version)")
    upgrade.add_argument("--from", dest="from_version", metavar="VERSION|CHANNEL",
                         help="the version the cluster runs now (default: the stack's cfcr:kubernetes.version; "
                              "`pulumi stack output kubernetesVersion` says what was last deployed)")
    upgrade.set_defaults(func=_upgrade_plan)
    restore = sub.add_parser("etcd-restore", help="the procedure that restores an etcd snapshot into the stack's "
                                                   "control plane, with every member's scripts (docs/backups.md)")
    _stack_options(restore)
    restore.add_argument("--snapshot-url", metavar="URL", help="a download URL of the snapshot (step 1 prints how "
                                                                "to make one); with --out, writes the members' scripts")
    restore.add_argument("--out", metavar="DIR", help="where to write the members' scripts (mode 0600)")
    restore.set_defaults(func=_etcd_restore)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"cfcr: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
