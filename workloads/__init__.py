"""Benchmarks, output parsers, the in-job runner, submission, results and reports.

Uses boto3 only, never aws_cdk: this package runs inside the job containers.
"""
