#!/usr/bin/env python3
"""Measure how rackform's reading commands grow with the records of one run, against the embedded AWS (moto's server
on 127.0.0.1, rackform/jobs/local.py EmbeddedAWS) on this machine, and print the curve (issue 23).

For each size N it writes run `m<N>`: N jobs, each with its marker, its record (an all-reduce sweep of 24 sizes x 3
repeats, about 17 KB, as torchbench writes one), one node's health record and one node log, then runs each command
in a fresh process (`python -m rackform ... --verbose`) and reports its wall time (interpreter start included), the
CPU seconds of that process alone (rackform's own work and botocore's), the CPU seconds the embedded AWS spent
answering it (this process's, which runs moto's server and nothing else meanwhile), its peak resident memory, and
the AWS requests it sent. For comparison, in this process: a bare listing of the same run's keys (ListObjectVersions
of its records folder), and the floor of reading the run: that listing plus a bare GET of every record (READERS at
a time, no checksum, no parsing). `runs` is measured warm: once every run has its summary.

    scripts/measure_results.py                       # 10, 100, 1,000 (a few minutes on 2 cores)
    scripts/measure_results.py --sizes 10,100,1000,10000

The targets (README "Results"): 10,000 records of one run reported in under 10 s and 300 MB.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rackform.jobs.local import EmbeddedAWS  # noqa: E402
from workloads.layout import BenchmarkJobName, BenchmarkMarker, log_key, records_prefix, submission_key  # noqa: E402
from workloads.results import HealthCheck, HealthRecord, Metric, ResultRecord  # noqa: E402
from workloads.store import READERS, RETRY_CONFIG, ResultStore  # noqa: E402

REGION = "us-east-1"
BUCKET = "rackform-measure-results"
T0 = dt.datetime(2026, 11, 24, 8, 0, tzinfo=dt.UTC)
WRITERS = 8
# What each command is run with; RUN is the measured run.
# The first reading of a run of PACK_AT records or more packs them (workloads/pack.py): `report` is that first
# reading, `report again` and `results` read the records' pack; `health` packs the health records and `status` the
# job markers, each on its first reading.
COMMANDS = {"report": ["report", "RUN"], "report again": ["report", "RUN"], "results": ["results", "RUN"],
            "health": ["health", "RUN"], "health again": ["health", "RUN"], "status": ["status", "RUN"],
            "status again": ["status", "RUN"], "runs": ["runs"]}
# A child process: the command, then its peak resident memory on stderr: VmHWM, its own high-water mark (Linux
# keeps getrusage's ru_maxrss across fork and exec, so a child would inherit this process's, which holds moto).
CHILD = ("import re, sys\nfrom rackform.cli import main\ncode = main(sys.argv[1:])\n"
         "hwm = re.search(r'VmHWM:\\s+(\\d+) kB', open('/proc/self/status').read())[1]\n"
         "print(f'maxrss_kib {hwm}', file=sys.stderr)\nsys.exit(code)")


def sweep() -> tuple[Metric, ...]:
    metrics = [Metric(name=name, value=10.0 + k, unit="GB/s", size_bytes=1 << (8 + k),
                      labels={"placement": "in-place", "repeat": str(r)})
               for r in range(3) for k in range(24) for name in ("algbw", "busbw")]
    return (*metrics, *(Metric(name="busbw_max", value=33.0 + r, unit="GB/s", size_bytes=1 << 31,
                               labels={"placement": "in-place", "repeat": str(r)}) for r in range(3)))


def write_job(store: ResultStore, run_id: str, i: int, metrics: tuple[Metric, ...]) -> None:
    rack = f"rack{i:05d}"
    name = str(BenchmarkJobName(run_id=run_id, rack=rack, node_group="h100", benchmark="allreduce"))
    marker = BenchmarkMarker(job_name=name, queue=f"measure-{rack}-h100-queue", job_definition="measure-allreduce",
                             rack=rack, node_group="h100", benchmark="allreduce", nodes=2, job_id=f"job-{i}")
    store.put_once(submission_key(run_id, name), marker.model_dump_json().encode(), "application/json")
    store.put_health(HealthRecord(run_id=run_id, benchmark="allreduce", rack=rack, node_group="h100",
                                  instance_type="p5.48xlarge", node_index=0, hostname=f"ip-10-0-{i // 250}-{i % 250}",
                                  checked_at=T0, checks=(HealthCheck(name="accelerators", status="passed",
                                                                     detail="8 of 8 GPUs"),)))
    store.put_record(ResultRecord(run_id=run_id, benchmark="allreduce", tool="nccl-tests", rack=rack,
                                  node_group="h100", tier="gpu", instance_type="p5.48xlarge", node_count=2,
                                  status="succeeded", metrics=metrics, started_at=T0,
                                  ended_at=T0 + dt.timedelta(seconds=30), price_usd_per_hour=110.08))
    store.put_log(log_key(run_id, rack, "h100", "allreduce", 0), "# nccl-tests all_reduce_perf\n" * 200)


def populate(store: ResultStore, run_id: str, n: int) -> float:
    started, metrics = time.perf_counter(), sweep()
    with ThreadPoolExecutor(WRITERS) as pool:
        list(pool.map(lambda i: write_job(store, run_id, i, metrics), range(n)))
    return time.perf_counter() - started


def floor(store: ResultStore, run_id: str) -> tuple[float, int, int, float, float]:
    """The floor of reading the run's records: a bare listing of the same keys (the run's records folder), then each
    record fetched, READERS at a time, and nothing else done. (listing seconds, keys listed, requests, seconds in
    all, CPU seconds of this process: the embedded AWS's and the client's)."""
    started, cpu = time.perf_counter(), time.process_time()
    keys, pages = [], 0
    for page in store.s3.get_paginator("list_object_versions").paginate(Bucket=BUCKET, Prefix=records_prefix(run_id)):
        pages += 1
        keys += [v["Key"] for v in page.get("Versions", [])]
    listed = time.perf_counter() - started
    with ThreadPoolExecutor(READERS) as pool:
        list(pool.map(lambda key: store.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read(), keys))
    return listed, len(keys), pages + len(keys), time.perf_counter() - started, time.process_time() - cpu


def command(env: dict[str, str], argv: list[str]) -> tuple[float, float, float, float, int, int]:
    """(seconds, CPU seconds, the embedded AWS's CPU seconds, peak MB, AWS requests, exit code) of `rackform ARGV
    --verbose` in a fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started, aws_cpu = time.perf_counter(), time.process_time()
    done = subprocess.run([sys.executable, "-c", CHILD, *argv, "--bucket", BUCKET, "--verbose"], env=env, cwd=ROOT,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
    seconds, aws_cpu = time.perf_counter() - started, time.process_time() - aws_cpu
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    rss = re.search(r"maxrss_kib (\d+)", done.stderr)
    requests = re.search(r"AWS requests: (\d+)", done.stderr)
    if rss is None or requests is None:
        raise SystemExit(f"rackform {' '.join(argv)} failed:\n{done.stderr[-2000:]}")
    return seconds, cpu, aws_cpu, int(rss[1]) / 1024, int(requests[1]), done.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10,100,1000", help="records per run, comma-separated")
    parser.add_argument("--commands", default=",".join(COMMANDS), help="which commands, comma-separated")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if unknown := set(args.commands.split(",")) - set(COMMANDS):
        parser.error(f"--commands: no {', '.join(sorted(unknown))} (choose from {', '.join(COMMANDS)})")
    commands = {name: argv for name, argv in COMMANDS.items() if name in args.commands.split(",")}
    with EmbeddedAWS(REGION) as embedded:
        s3 = embedded.client("s3", config=RETRY_CONFIG)
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        store = ResultStore(BUCKET, s3)
        env = {**os.environ, **embedded.env, "PYTHONPATH": str(ROOT)}
        print(f"{'records':>8} {'command':>12} {'seconds':>8} {'cpu s':>7} {'AWS cpu':>7} {'MB':>7} {'requests':>9} "
              f"{'exit':>4} {'x listing':>9} {'x floor':>7}", flush=True)
        for n in sizes:
            run_id = f"m{n}"
            wrote = populate(store, run_id, n)
            listing, keys, floor_requests, least, floor_cpu = floor(store, run_id)
            print(f"{n:>8} {'(write)':>12} {wrote:>8.1f} {'':>7} {'':>7} {'':>7} {'':>9} {'':>4} {'':>9} {'':>7}   "
                  f"{4 * n:,} objects, {keys:,} of them records")
            print(f"{n:>8} {'listing':>12} {listing:>8.2f} {'':>7} {'':>7} {'':>7} {1 + keys // 1000:>9} {'':>4} "
                  f"{1.0:>9.1f}", flush=True)
            print(f"{n:>8} {'floor':>12} {least:>8.2f} {'':>7} {floor_cpu:>7.2f} {'':>7} {floor_requests:>9} {'':>4} "
                  f"{least / listing:>9.1f} {1.0:>7.1f}", flush=True)
            for name, argv in commands.items():
                if name == "runs":  # the runs written so far get their summaries: the `runs` measured is warm
                    command(env, ["runs"])
                seconds, cpu, aws_cpu, mb, requests, code = command(env, [run_id if a == "RUN" else a for a in argv])
                print(f"{n:>8} {name:>12} {seconds:>8.2f} {cpu:>7.2f} {aws_cpu:>7.2f} {mb:>7.0f} {requests:>9} "
                      f"{code:>4} {seconds / listing:>9.1f} {seconds / least:>7.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
