"""The cfcr Pulumi program: read the stack's spec, build the cluster, export its outputs."""

from cfcr import program

program.export(program.main())
