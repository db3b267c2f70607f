"""Rack acceptance, the pure part: the plan before anything runs, the verdict per node from the group's robust band and
the published baselines, what a slow node costs, and the certificate that records it all.

No AWS here (the pure-core contract): `rackform accept` (rackform/cli/accept.py) submits, waits and reads the
records, then hands the figures to this package.
"""
