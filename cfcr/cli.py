"""The ``cfcr`` command: ``render`` a stack offline, print the ``docs`` config reference."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cfcr.config import ConfigError


def _render(args: argparse.Namespace) -> int:
    from cfcr.render import render_stack

    result = render_stack(args.stack, Path(args.out), show_secrets=args.show_secrets)
    roles = ", ".join(sorted(result.user_data)) or "none"
    print(f"rendered stack {args.stack}: {len(result.resources)} resources, user-data for {roles}, "
          f"{len(result.manifests)} manifests -> {args.out}")
    return 0


def _docs(args: argparse.Namespace) -> int:
    from cfcr.config.docs import config_reference, pulumi_yaml

    print(config_reference() if args.what == "config" else pulumi_yaml(), end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cfcr", description="Kubernetes clusters on AWS, GCP and Azure with Pulumi.")
    sub = parser.add_subparsers(dest="command", required=True)
    render = sub.add_parser("render", help="run the program for a stack offline (mock runtime) and write what it builds")
    render.add_argument("--stack", required=True, help="stack name: reads stacks/Pulumi.<stack>.yaml")
    render.add_argument("--out", required=True, help="directory to write resources.json, nodes/ and manifests/")
    render.add_argument("--show-secrets", action="store_true", help="write secret values instead of \"[secret]\"")
    render.set_defaults(func=_render)
    docs = sub.add_parser("docs", help="print documents generated from the config schema")
    docs.add_argument("what", nargs="?", choices=["config", "pulumi-yaml"], default="config",
                      help="config: the README's config reference; pulumi-yaml: the Pulumi.yaml project file")
    docs.set_defaults(func=_docs)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"cfcr: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
