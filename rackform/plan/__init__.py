"""The pure plan: its models, how a spec becomes one, naming, network math, stack limits, cost and diff."""
