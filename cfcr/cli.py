"""The ``cfcr`` command: list the project's ``stacks``, ``render`` a stack offline, ``check`` it against the policy pack, check its
network ``flows``, list its ``assets`` (and check an air-gapped render against them), print the ``docs`` config reference, print an ``upgrade-plan``, list the
``channels``, write an ``etcd-restore`` procedure."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from typing import Any

import yaml

from cfcr.config import ConfigError, InputError
from cfcr.smoke.kube import KubeconfigError


def _default_project_dir() -> Path | None:
    """The current directory when it is a cfcr project (a Pulumi.yaml whose program is cfcr's),
    else ``None``: the cfcr project this package came from."""
    import yaml

    here = Path.cwd()
    try:
        project = yaml.safe_load((here / "Pulumi.yaml").read_text())
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return None
    if not isinstance(project, dict):
        return None
    if project.get("name") == "cfcr":
        return here
    main = here / str(project.get("main") or ".")
    try:
        text = (main if main.suffix == ".py" else main / "__main__.py").read_text()
    except (OSError, UnicodeDecodeError):
        return None
    return here if "import cfcr" in text or "from cfcr" in text else None


def _project_dir(args: argparse.Namespace) -> Path | None:
    """``--project-dir`` (which must exist), else :func:`_default_project_dir`."""
    from cfcr.config import InputError

    if getattr(args, "project_dir", None):
        path = Path(args.project_dir)
        if not path.is_dir():
            raise InputError(f"--project-dir {path}: {'a file, not a directory' if path.exists() else 'no such directory'}")
        return path
    return _default_project_dir()


def _stack(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """The stack's name and its config: the stack file ``--stack`` names (in ``--project-dir``)
    with each ``--config KEY=VALUE`` set."""
    from cfcr.config import find_stack, read_stack_file
    from cfcr.config.overrides import apply

    ref = find_stack(args.stack, _project_dir(args))
    config = read_stack_file(ref.path)
    return ref.name, apply(config, getattr(args, "config", None) or [])


def _rendering(name: str, config: dict[str, Any]) -> None:
    """Check the stack's config (a mistake stays the one line it is), then say on stderr that the
    render starts: it takes 10-20 s (provider SDK imports, then every resource under Pulumi's
    mock runtime), and nothing else is printed until it is done."""
    from cfcr.config import load_spec

    from cfcr.clouds import require_sdk

    spec = load_spec(config, name)
    require_sdk(spec.cloud, name)  # a missing SDK is its own one line, before this one
    print(f"cfcr: rendering stack {name} ({spec.cloud}, {spec.region}) offline under Pulumi's mock runtime "
          "(10-20 s)...", file=sys.stderr, flush=True)


def _spec(args: argparse.Namespace) -> tuple[str, Any]:
    """The stack's name and validated ClusterSpec."""
    from cfcr.config import load_spec

    name, config = _stack(args)
    return name, load_spec(config, name)


def _render(args: argparse.Namespace) -> int:
    from cfcr.config import InputError
    from cfcr.render import render_program, render_stack

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: a file; expected a directory (created if missing) to write the render to")
    if args.program:  # another Pulumi program (DIR/__main__.py with DIR/Pulumi.<stack>.yaml)
        if args.config or args.project_dir:
            raise InputError(f"--program {args.program}: reads DIR/Pulumi.{args.stack}.yaml as it is; "
                             "--config and --project-dir apply to cfcr's own program only")
        name = args.stack
        program = Path(args.program)
        if (program / "__main__.py").is_file() and (program / f"Pulumi.{name}.yaml").is_file():  # else: its error
            print(f"cfcr: rendering program {program} with stack {name} offline under Pulumi's mock runtime "
                  "(10-20 s)...", file=sys.stderr, flush=True)
        result = render_program(Path(args.program), name, out, show_secrets=args.show_secrets)
    else:
        name, config = _stack(args)
        _rendering(name, config)
        result = render_stack(name, out, show_secrets=args.show_secrets, config=config)
    if args.program:
        print(f"rendered program {args.program} with stack {name}: {len(result.resources)} resources -> {args.out} "
              "(resources.json with every input, manifests/; machines' user-data is in their resources' inputs)")
        return 0
    roles = ", ".join(sorted(result.user_data)) or "none"
    manifests = sum(1 for f in result.files if "manifests" in f.relative_to(out).parts[:1])
    print(f"rendered stack {name}: {len(result.resources)} resources, user-data for {roles}, "
          f"{manifests} manifests -> {args.out}")
    _render_picture_note(result.files)
    return 0


def _render_picture_note(files: list[Path]) -> None:
    names = {f.name for f in files}
    if "architecture.dot" in names and "architecture.svg" not in names:
        print("architecture.dot written; architecture.svg needs Graphviz's dot (apt-get install graphviz)")


def _check(args: argparse.Namespace) -> int:
    import json

    from cfcr.config import InputError

    try:
        from cfcr.policy.runner import PolicyConfigError, check_stack
    except ModuleNotFoundError as exc:  # pulumi-policy comes with the extra cfcr[policy]
        if (exc.name or "").split(".")[0] != "pulumi_policy":
            raise
        print("cfcr: check runs the policy pack, whose SDK pulumi-policy is not installed: install cfcr[policy] "
              "(`pip install 'cfcr[policy]'`, or in a cfcr clone `python3 dev.py render`)", file=sys.stderr)
        return 2

    pack = Path(args.policy_pack)
    if not (pack / "PulumiPolicy.yaml").is_file():
        found = "no such directory" if not pack.exists() else "no PulumiPolicy.yaml there"
        raise InputError(f"--policy-pack {pack}: {found}; expected a policy pack directory, e.g. policy")
    name, config = _stack(args)
    policy_config = None
    if args.policy_config:
        source = Path(args.policy_config)
        try:
            policy_config = json.loads(source.read_text())
        except OSError as exc:
            raise InputError(f"--policy-config {source}: {exc.strerror.lower() if exc.strerror else exc}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            where = f"line {exc.lineno}, column {exc.colno}: " if isinstance(exc, json.JSONDecodeError) else ""
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            raise InputError(f"--policy-config {source}: {where}not valid JSON: {reason}") from None
    _rendering(name, config)
    try:
        report = check_stack(name, stack_config=config, policy_config=policy_config)
    except PolicyConfigError as exc:
        print(f"cfcr: --policy-config {args.policy_config}: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(f"policy pack {pack} over stack {name}:")
        print(report.format())
    return 1 if report.mandatory else 0


def _flows(args: argparse.Namespace) -> int:
    from cfcr.flows import check_stack

    from cfcr.flows.check import RenderDirError

    name, config = _stack(args)
    if not args.render:
        _rendering(name, config)
    try:
        report = check_stack(name, config=config, render_dir=Path(args.render) if args.render else None)
    except RenderDirError as exc:
        print(f"cfcr: --render: {exc}", file=sys.stderr)
        return 2
    print(report.format(verbose=args.verbose))
    return 0 if report.ok else 1


def _assets(args: argparse.Namespace) -> int:
    import json

    name, config = _stack(args)
    _rendering(name, config)
    if args.check:
        from cfcr.assets.check import check_stack as check_airgap

        report = check_airgap(name, config=config)
        print(json.dumps(report.assets.to_json(), indent=2) if args.json else report.format(), end="\n" if args.json else "")
        if args.json and not report.ok:
            print(report.format(), file=sys.stderr, end="")
        return 0 if report.ok else 1
    from cfcr.assets import stack_assets

    if args.kubernetes_version:
        from cfcr.channels import CHANNELS

        version = CHANNELS.get(args.kubernetes_version, args.kubernetes_version)  # a channel: today's version
        config = {**config, "cfcr:kubernetes": {"version": version}}
    listing = stack_assets(name, config=config)
    print(json.dumps(listing.to_json(), indent=2) if args.json else listing.to_text(), end="\n" if args.json else "")
    return 0


def _docs(args: argparse.Namespace) -> int:
    from cfcr.config.docs import config_reference, pulumi_yaml

    print(config_reference() if args.what == "config" else pulumi_yaml(), end="")
    return 0


def _smoke(args: argparse.Namespace) -> int:
    from cfcr.smoke import SmokeOptions, run_smoke
    from cfcr.smoke.kube import ApiUnreachable, ClusterError, KubeApi

    api = KubeApi(args.kubeconfig, args.context)
    try:
        report = run_smoke(api, SmokeOptions(timeout=args.timeout, cluster_domain=args.cluster_domain, cni=args.cni))
    except ClusterError as exc:  # the first call failed: unreachable, or refused (401, 403)
        print(f"cfcr: smoke: {exc}" if isinstance(exc, ApiUnreachable) else f"cfcr: smoke: the API at {api.host} "
              f"answered: {exc}", file=sys.stderr)
        return 2
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
    from cfcr.config.topology import control_plane_members

    name, spec = _spec(args)
    configured = spec.kubernetes.version
    print(f"stack {name}: cfcr:kubernetes.version is {configured} ({resolve(configured).version})")
    try:
        plan = plan_upgrade(args.from_version or configured, args.to or configured,
                            members=[m.name for m in control_plane_members(spec)], cloud=spec.cloud,
                            pools=[p.name for p in spec.node_pools])
    except UpgradePlanError as exc:
        print(f"cfcr: upgrade-plan: {exc}", file=sys.stderr)
        return 2
    print(format_plan(plan, cluster=spec.name), end="")
    if not (args.to or args.from_version):
        print("(pass --to VERSION|CHANNEL to plan from the stack's version, or --from the deployed version "
              "to plan to it)")
    return 0 if plan.possible else 1


def _etcd_restore(args: argparse.Namespace) -> int:
    from cfcr.etcd_restore import RestoreError, runbook, write_kit

    if (args.snapshot_url is None) != (args.out is None):
        given = "--snapshot-url" if args.snapshot_url is not None else "--out"
        print(f"cfcr: etcd-restore: {given} given alone; give --snapshot-url and --out together (or neither, "
              "to see the first steps)", file=sys.stderr)
        return 2
    name, spec = _spec(args)
    try:
        out = Path(args.out) if args.out else None
        if out is not None:
            write_kit(spec, args.snapshot_url, out)
        print(runbook(spec, args.snapshot_url, out, stack=name), end="")
    except RestoreError as exc:
        print(f"cfcr: etcd-restore: {exc}", file=sys.stderr)
        return 2
    return 0


def _stacks(args: argparse.Namespace) -> int:
    from cfcr.config import ConfigError, InputError, list_stacks, load_spec, read_stack_file
    from cfcr.channels import resolve
    from cfcr.config.topology import control_plane_members

    project = _project_dir(args)
    refs = list_stacks(project)
    if not refs:
        from cfcr.config.load import PACKAGE_PROJECT, stack_dirs

        looked = ", ".join(str(d) for d in stack_dirs(project or PACKAGE_PROJECT))
        print(f"cfcr: stacks: no Pulumi.*.yaml in {looked}", file=sys.stderr)
        return 2
    width = max(len(ref.name) for ref in refs)
    for ref in refs:
        try:
            spec = load_spec(read_stack_file(ref.path), ref.name)
        except (ConfigError, InputError) as exc:
            print(f"{ref.name:<{width}}  invalid: {str(exc).splitlines()[-1].strip()}")
            continue
        version = spec.kubernetes.version
        resolved = resolve(version).version
        pools = ", ".join(f"{p.name} {p.min_size}-{p.max_size}" for p in spec.node_pools) or "none"
        print(f"{ref.name:<{width}}  {spec.cloud:<5} {spec.region:<15} {version if version == resolved else f'{version}={resolved}':<15} "
              f"cni={spec.cni:<8} members={len(control_plane_members(spec))}  pools: {pools}")
    return 0


def _project_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--project-dir", metavar="DIR",
                        help="the Pulumi project holding the stack files: DIR/<Pulumi.yaml stackConfigDir>, "
                             "DIR/stacks or DIR itself (default: the current directory if it is a cfcr project, "
                             "else the cfcr project this package came from)")


def _stack_options(parser: argparse.ArgumentParser, *, overrides: bool = False) -> None:
    """``--stack`` and ``--project-dir``: which stack file a command reads, and from where; with
    ``overrides``, also ``--config KEY=VALUE``."""
    parser.add_argument("--stack", required=True, metavar="NAME|FILE",
                        help="a stack name (reads Pulumi.NAME.yaml of the project, see --project-dir) or the path "
                             "of a stack file (a value with a / or ending in .yaml)")
    _project_option(parser)
    if overrides:
        parser.add_argument("--config", action="append", default=[], metavar="KEY=VALUE",
                            help="set one stack config value, KEY as config errors print it (controlPlane.count, "
                                 "nodePools[0].minSize, cfcr:cni, aws:region), VALUE as YAML; repeatable")


def _diff(args: argparse.Namespace) -> int:
    import json

    from cfcr.config import find_stack, read_stack_file
    from cfcr.config.overrides import apply
    from cfcr.review.diff import diff
    from cfcr.review.snapshot import SnapshotError, load_dir, load_stack

    def stack_config(stack: str, items: list[str]) -> tuple[str, dict[str, Any]]:
        """The stack's name and config with ``items`` set, checked (a mistake ends here, before any render)."""
        from cfcr.config import load_spec

        ref = find_stack(stack, _project_dir(args))
        config = apply(read_stack_file(ref.path), items)
        load_spec(config, ref.name)
        return ref.name, config

    def stack_snapshot(name_config: tuple[str, dict[str, Any]]) -> Any:
        _rendering(*name_config)
        return load_stack(name_config[0], config=name_config[1])

    try:
        if len(args.renders) > 2 or (args.renders[1:] and (args.stack or args.against_stack)):
            raise SnapshotError("give two render directories, or one and --stack, or --stack with --against-stack "
                                "or --config")
        if args.renders and args.against_stack:
            raise SnapshotError("--against-stack is BEFORE, and so is the first render directory: give one of them")
        if args.config and not args.stack:
            raise SnapshotError("--config changes the --stack render: give --stack")
        if not args.renders and not args.stack:
            raise SnapshotError("nothing to compare: give BEFORE [AFTER] render directories or --stack")
        if len(args.renders) == 1 and not args.stack:
            raise SnapshotError("one render directory: say what to compare it with (AFTER or --stack)")
        if args.stack and not (args.renders or args.against_stack or args.config):
            raise SnapshotError("--stack alone compares the stack with itself: add --against-stack, --config or "
                                "a BEFORE render directory")
        for item in args.renders:
            if not Path(item).is_dir():
                raise SnapshotError(f"{item}: not a directory (a render written by `cfcr render --out DIR`)")
        before_stack = None if args.renders else stack_config(args.against_stack or args.stack, [])
        after_stack = None if len(args.renders) == 2 else stack_config(args.stack, args.config)
        before = load_dir(Path(args.renders[0])) if before_stack is None else stack_snapshot(before_stack)
        if after_stack is None:
            after = load_dir(Path(args.renders[1]))
        else:
            after = stack_snapshot(after_stack)
            if args.config:
                after = type(after)(f"{after.label} with {' '.join(args.config)}", after.resources, after.user_data,
                                    after.manifests)
    except SnapshotError as exc:
        print(f"cfcr: diff: {exc}", file=sys.stderr)
        return 2
    result = diff(before, after)
    print(json.dumps(result.to_json(), indent=2) if args.json else result.format())
    return 0


def _diff_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    diff = sub.add_parser("diff", help="what changes between two renders (directories or stacks rendered now) and "
                                        "what each change does: control-plane members replaced, pools rolled, "
                                        "resources added, removed, changed, user-data and manifest diffs")
    diff.add_argument("renders", nargs="*", metavar="DIR", help="BEFORE [AFTER]: render directories written by "
                                                              "`cfcr render --out DIR`")
    diff.add_argument("--stack", metavar="NAME|FILE", help="AFTER: this stack rendered now (with the --config overrides)")
    diff.add_argument("--against-stack", metavar="NAME|FILE", help="BEFORE: this stack rendered now "
                                                                  "(default with --config: --stack without them)")
    _project_option(diff)
    diff.add_argument("--config", action="append", default=[], metavar="KEY=VALUE",
                      help="set one config value of the --stack render, KEY as config errors print it "
                           "(kubernetes.version, nodePools[0].minSize, aws:region), VALUE as YAML; repeatable")
    diff.add_argument("--json", action="store_true", help="print JSON instead of text")
    diff.set_defaults(func=_diff)


def _cost(args: argparse.Namespace) -> int:
    import json

    from cfcr.review.cost import PriceError, stack_estimate

    name, config = _stack(args)
    _rendering(name, config)
    try:
        result = stack_estimate(name, config=config)
    except PriceError as exc:
        print(f"cfcr: cost: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result.to_json(), indent=2) if args.json else result.format())
    return 0


def _cost_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    cost = sub.add_parser("cost", help="render a stack and estimate what it costs a month at list prices "
                                        "(cfcr/review/prices/, each price with its source and date)")
    _stack_options(cost, overrides=True)
    cost.add_argument("--json", action="store_true", help="print JSON instead of text")
    cost.set_defaults(func=_cost)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cfcr", description="Kubernetes clusters on AWS, GCP and Azure with Pulumi.")
    sub = parser.add_subparsers(dest="command", required=True)
    render = sub.add_parser("render", help="run the program for a stack offline (mock runtime) and write what it builds")
    _stack_options(render, overrides=True)
    render.add_argument("--out", required=True, help="directory to write resources.json, nodes/ and manifests/")
    render.add_argument("--show-secrets", action="store_true", help="write secret values instead of \"[secret]\"")
    render.add_argument("--program", metavar="DIR", help="render another Pulumi program instead: DIR/__main__.py with "
                                                         "DIR/Pulumi.<stack>.yaml (e.g. examples/platform-program)")
    render.set_defaults(func=_render)
    check = sub.add_parser("check", help="render a stack offline and run the policy pack over it "
                                          "(exit 1 on a mandatory violation)")
    _stack_options(check, overrides=True)
    check.add_argument("--policy-pack", required=True, help="the policy pack directory, e.g. policy")
    check.add_argument("--policy-config", metavar="FILE",
                       help="JSON policy config, the file `pulumi preview --policy-pack-config` takes")
    check.add_argument("--json", action="store_true", help="print the report as JSON: counts and violations grouped "
                                                            "by cause, each with the config key that fixes it")
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
    stacks = sub.add_parser("stacks", help="list the project's stacks: cloud, region, version, CNI, members, pools")
    _project_option(stacks)
    stacks.set_defaults(func=_stacks)
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
    _diff_parser(sub)
    _cost_parser(sub)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (ConfigError, InputError) as exc:
        print(f"cfcr: {exc}", file=sys.stderr)
        return 2
    except KubeconfigError as exc:
        print(f"cfcr: {args.command}: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader stopped early (`cfcr channels --json | head`): not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 0
    except OSError as exc:  # a backstop: a file the user named that the cases above do not cover
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"cfcr: {args.command}: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except yaml.YAMLError as exc:  # a backstop, likewise
        print(f"cfcr: {args.command}: not valid YAML: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
