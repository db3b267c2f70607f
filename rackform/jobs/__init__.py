"""Operator side of benchmark jobs: job definitions, submission, the local executor."""
