"""rackform: declare, validate, plan and synthesize rack-style AWS clusters.

This package is the CDK-free core: spec models, instance catalog, validators, the plan and the CLI.
Nothing here imports aws_cdk, so `rackform validate` and `rackform plan` start in well under a second.
"""

__version__ = "0.1.0"
