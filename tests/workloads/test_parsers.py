"""Parsers against real tool output (tests/data/tool-output/README.md says where each file comes from).

Expected numbers are read off the fixtures by hand, so a parser that drifts from the tools' formats fails here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workloads.parsers import TOOLS, parse

DATA = Path(__file__).resolve().parents[1] / "data" / "tool-output"


def fixture(path: str) -> str:
    return (DATA / path).read_text()


def value(parsed, name: str, size: int | None = None, **labels: str) -> float:
    found = [m for m in parsed.metrics if m.name == name and m.size_bytes == size
             and all(m.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, f"{name} size={size} {labels}: {found}"
    return found[0].value


def ok_text(tool: str, text: str):
    parsed = parse(tool, text)
    assert parsed.ok, parsed.reason
    assert parsed.tool == tool and parsed.reason is None
    return parsed


def ok(tool: str, path: str):
    return ok_text(tool, fixture(path))


def failed(tool: str, text: str):
    parsed = parse(tool, text)
    assert not parsed.ok and parsed.reason and not parsed.metrics, parsed
    return parsed


# --- dispatch and the busbw formula ----------------------------------------------------------------------------


def test_unknown_tool_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown tool 'ior'.*nccl-tests, nccom-test, fio.*iperf3"):
        parse("ior", "")


@pytest.mark.parametrize("tool", TOOLS)
def test_every_tool_dispatches_and_rejects_empty_output(tool):
    assert failed(tool, "").tool == tool


def test_torchbench_bus_factor_agrees_with_what_nccl_tests_printed():
    from workloads.torchbench import bus_factor

    # 3-rank all-reduce, 536870912 B: algbw 6.00, busbw 8.00; 12-rank, 8589934592 B: algbw 67.40, busbw 123.56.
    assert 6.00 * bus_factor(3) == pytest.approx(8.00)
    assert 67.40 * bus_factor(12) == pytest.approx(123.56, abs=0.01)


# --- nccl-tests ------------------------------------------------------------------------------------------------


def test_nccl_tests_current_format():
    p = ok("nccl-tests", "nccl-tests/all_reduce-3ranks.txt")
    assert len(p.metrics) == 27 * 2 * 3 + 2
    assert value(p, "busbw_max") == 8.00  # the largest out-of-place busbw, at 536870912 B
    assert value(p, "busbw_avg_reported") == 3.43326
    assert value(p, "algbw", 536870912, placement="out-of-place") == 6.00
    assert value(p, "time_us", 536870912, placement="out-of-place") == 89511
    assert value(p, "busbw", 536870912, placement="in-place") == 7.99
    assert value(p, "time_us", 8, placement="in-place") == 25.35
    assert all(m.unit == "GB/s" for m in p.metrics if "bw" in m.name)
    assert p.details == {"datatype": "float", "redop": "sum", "ranks": "3"}


def test_nccl_tests_mpirun_tag_output_prefixes():
    plain = ok("nccl-tests", "nccl-tests/all_reduce-3ranks.txt")
    tagged = ok("nccl-tests", "nccl-tests/all_reduce-3ranks-mpirun-tag-output.txt")
    assert tagged.metrics == plain.metrics and tagged.details == plain.details


def test_nccl_tests_srun_prefixes_and_missing_footer():
    p = ok("nccl-tests", "nccl-tests/all_reduce-2xp5-srun-excerpt.txt")
    assert value(p, "busbw_max") == 487.09  # 2x p5.48xlarge at 16 GiB, as the AWS facts quote it
    assert value(p, "busbw", 17179869184, placement="in-place") == 487.26
    assert len([m for m in p.metrics if m.name == "busbw"]) == 32 * 2
    assert p.details["truncated"] == "true"
    assert not [m for m in p.metrics if m.name == "busbw_avg_reported"]


def test_nccl_tests_old_build_with_float_error_column():
    # error is a tolerance (2e-07 on every row here), not a verdict: the footer says 0 out-of-bounds values.
    p = ok("nccl-tests", "nccl-tests/all_reduce-12gpu-old-error-column.txt")
    assert value(p, "busbw_max") == 123.56
    assert value(p, "busbw_avg_reported") == 42.5578
    assert value(p, "algbw", 8589934592, placement="out-of-place") == 67.40
    assert value(p, "time_us", 8589934592, placement="in-place") == 127443
    assert p.details == {"datatype": "float", "redop": "sum", "ranks": "12"}


def test_nccl_tests_na_in_wrong_column():
    p = ok("nccl-tests", "nccl-tests/alltoall-in-place-na.txt")
    assert value(p, "algbw", 33554432, placement="in-place") == 43046.10
    assert value(p, "busbw_max") == 0.0 and value(p, "busbw_avg_reported") == 0.0
    assert p.details["redop"] == "none"


def test_nccl_tests_wrong_results_fail():
    p = failed("nccl-tests", fixture("nccl-tests/all_reduce-wrong-results-2.17.8.txt"))
    assert p.reason == ("wrong results: 2 measurement(s) with #wrong > 0, first at 1048576 B out-of-place "
                        "(96 wrong elements)")
    assert p.details["nccl_tests_version"] == "2.17.8" and p.details["nccl_version"] == "2.29.2"
    assert p.details["collective"] == "all_reduce" and p.details["ranks"] == "2"


def test_nccl_tests_out_of_bounds_fails_old_build():
    p = failed("nccl-tests", fixture("nccl-tests/all_gather-old-out-of-bounds.txt"))
    assert p.reason == "nccl-tests found 4 out-of-bounds values: the results are wrong"


def test_nccl_tests_crash_mid_sweep_keeps_rows():
    p = ok("nccl-tests", "nccl-tests/all_reduce-truncated-cuda-error.txt")
    assert p.details["truncated"] == "true"
    assert p.details["failure"].startswith("Test NCCL failure common.cu:1204 'unhandled cuda error")
    assert value(p, "busbw_max") == 367.29
    assert len([m for m in p.metrics if m.name == "busbw"]) == 5 * 2


def test_nccl_tests_failure_before_any_row():
    p = failed("nccl-tests", fixture("nccl-tests/cuda-busy-before-results.txt"))
    assert p.reason == ("nccl-tests stopped before printing results: Test CUDA failure common.cu:1304 "
                        "'CUDA-capable device(s) is/are busy or unavailable'")
    assert p.details["ranks"] == "8" and p.details["collective"] == "all_reduce"


def test_nccl_tests_header_without_rows():
    text = fixture("nccl-tests/all_reduce-3ranks.txt").split("           8             2")[0]
    p = failed("nccl-tests", text)
    assert p.reason.startswith("nccl-tests printed its table header but no result rows; output ends with:")


def test_nccl_tests_garbage():
    p = failed("nccl-tests", fixture("nccl-tests/garbage-build-log.txt"))
    assert p.reason.startswith("no nccl-tests results table found (is this all_reduce_perf output?); output ends "
                               "with: 'Linking")


def test_nccl_tests_two_independent_runs_fail():
    # What a build without MPI=1 prints under mpirun -np 2: each process runs its own single-rank test.
    text = fixture("nccl-tests/all_reduce-3ranks.txt")
    assert failed("nccl-tests", text + text).reason.startswith("2 nccl-tests result tables in one output")


def test_nccl_tests_average_below_requested_minimum_fails():
    text = fixture("nccl-tests/all_reduce-3ranks.txt").replace("3.43326", "3.43326 FAILED")
    assert failed("nccl-tests", text).reason == ("average bus bandwidth 3.43326 GB/s is below the minimum "
                                                 "nccl-tests was asked to check")


def test_nccl_tests_json_matches_its_text_output():
    p = ok("nccl-tests", "nccl-tests/all_reduce-3ranks.json")
    assert p.metrics == ok("nccl-tests", "nccl-tests/all_reduce-3ranks.txt").metrics
    assert p.details == {"json": "true", "datatype": "float", "redop": "sum", "collective": "all_reduce",
                         "ranks": "3", "nccl_version": "2.27.3"}


def test_nccl_tests_json_failures():
    doc = json.loads(fixture("nccl-tests/all_reduce-3ranks.json"))
    doc["results"][3]["in_place"]["nwrong"] = 12.0
    assert failed("nccl-tests", json.dumps(doc)).reason == ("wrong results: 1 measurement(s) with #wrong > 0, first "
                                                            "at 64 B in-place (12 wrong elements)")
    doc["results"][3]["in_place"]["nwrong"] = None  # written when the run did not check
    doc["out_of_bounds"] = {"count": 7, "okay": "false"}
    assert "7 out-of-bounds values" in failed("nccl-tests", json.dumps(doc)).reason
    del doc["out_of_bounds"], doc["average_bus_bandwidth"]
    assert parse("nccl-tests", json.dumps(doc)).details["truncated"] == "true"
    doc["results"][0]["out_of_place"]["bus_bw"] = "nan"  # how util.cu writes a NaN double
    assert "unreadable nccl-tests output" in failed("nccl-tests", json.dumps(doc)).reason


# --- nccom-test ------------------------------------------------------------------------------------------------


def test_nccom_test_gib_per_second_normalised():
    p = ok("nccom-test", "nccom-test/allr-64ranks-2nodes.txt")
    assert p.details == {"collective": "all_reduce", "ranks": "64", "datatype": "fp32", "nccom_unit": "GiB/s"}
    assert value(p, "busbw", 1073741824, placement="out-of-place") == pytest.approx(47.09 * 1.073741824)
    assert value(p, "busbw_max") == pytest.approx(47.09 * 1.073741824)
    assert value(p, "busbw_avg_reported") == pytest.approx(9.3924 * 1.073741824)
    assert value(p, "time_us", 1073741824, placement="out-of-place") == 41806
    # After normalising, algbw is size / time in decimal GB/s, like nccl-tests'.
    assert value(p, "algbw", 1073741824, placement="out-of-place") == pytest.approx(1073741824 / 41806e-6 / 1e9,
                                                                                     rel=1e-3)


def test_nccom_test_newer_tables_are_decimal_and_time_is_the_average():
    p = ok("nccom-test", "nccom-test/allg-stats.txt")
    assert p.details["nccom_unit"] == "GB/s" and p.details["collective"] == "all_gather"
    assert value(p, "algbw", 524288, placement="out-of-place") == 35.34  # 524288 B / 14.83 us = 35.35 GB/s
    assert value(p, "time_us", 524288, placement="out-of-place") == 14.83  # time:avg, not p25..p99
    assert value(p, "busbw_max") == 30.92 and value(p, "busbw_avg_reported") == 9.1966


def test_nccom_test_extra_algorithm_column():
    p = ok("nccom-test", "nccom-test/allr-show-algorithm.txt")
    assert len([m for m in p.metrics if m.name == "busbw"]) == 8
    assert value(p, "busbw_max") == 103.89 and value(p, "busbw_avg_reported") == 16.6181
    assert value(p, "busbw", 4, placement="out-of-place") == 0.0


def test_nccom_test_json_report():
    p = ok("nccom-test", "nccom-test/allg-report.json")
    assert p.details == {"json": "true", "datatype": "fp32", "nccom_unit": "GB/s"}
    assert value(p, "busbw_max") == 21.97975251876395
    assert value(p, "time_us", 8192, placement="out-of-place") == 6.55
    assert not [m for m in p.metrics if m.name == "busbw_avg_reported"]


def test_nccom_test_missing_footer_is_truncated():
    text = fixture("nccom-test/allr-64ranks-2nodes.txt").rsplit("Avg bus bandwidth", 1)[0]
    assert ok_text("nccom-test", text).details["truncated"] == "true"


def test_nccom_test_failures():
    p = failed("nccom-test", fixture("nccom-test/failed.txt"))
    assert p.reason == ("nccom-test: 1 errors found - test failed (neuron-bench log: "
                        "/tmp/nccom_test_log_7pqpdfjf.log)")
    p = failed("nccom-test", fixture("nccom-test/driver-not-running.txt"))
    assert p.reason.startswith("no nccom-test results table found; output ends with: 'Neuron DKMS Driver is not "
                               "running!")


# --- fio -------------------------------------------------------------------------------------------------------


def test_fio_single_job_read():
    p = ok("fio", "fio/rand-read.json")
    assert value(p, "read_bw") == 55444405 / 1e6
    assert value(p, "read_iops") == 13536.231884
    assert value(p, "read_lat_p50_us") == 60.160 and value(p, "read_lat_p99_us") == 301.056
    assert value(p, "read_lat_mean_us") == pytest.approx(73.272556819)
    assert {m.name for m in p.metrics} == {"read_bw", "read_iops", "read_lat_p50_us", "read_lat_p99_us",
                                           "read_lat_mean_us"}
    assert p.details == {"fio_version": "fio-3.33", "jobs": "rand-read"}


def test_fio_two_jobs_are_summed():
    p = ok("fio", "fio/randrw-two-jobs.json")
    assert value(p, "read_bw") == pytest.approx((43127748 + 42206608) / 1e6)
    assert value(p, "read_iops") == pytest.approx(10529.235382 + 10304.347826)
    assert value(p, "read_lat_p50_us") == 69.120 and value(p, "read_lat_p99_us") == 317.440
    assert value(p, "read_lat_mean_us") == pytest.approx(
        (84161.400019 * 21069 + 84714.516902 * 20619) / (21069 + 20619) / 1e3)
    assert value(p, "write_bw") == pytest.approx((18408459 + 18177151) / 1e6)
    assert value(p, "write_iops") == pytest.approx(4494.252874 + 4437.781109)
    assert value(p, "write_lat_p99_us") == 5.856
    assert value(p, "write_lat_mean_us") == pytest.approx((2554.379962 * 8993 + 2298.70732 * 8880) / 17873 / 1e3)


def test_fio_warnings_before_the_json_and_write_only():
    p = ok("fio", "fio/seq-write-verify-warnings.json")
    assert {m.name for m in p.metrics} == {"write_bw", "write_iops", "write_lat_p50_us", "write_lat_p99_us",
                                           "write_lat_mean_us"}
    assert value(p, "write_bw") == 2729.12734
    assert all(m.unit == "us" for m in p.metrics if "lat" in m.name)


def test_fio_failures():
    p = failed("fio", fixture("fio/job-error-unlink.json"))
    assert p.reason == ("fio job 'ro' failed with error 1 (fio: pid=0, err=1/file:filesetup.c:150, func=unlink, "
                        "error=Operation not permitted)")
    p = failed("fio", fixture("fio/no-data-missing-dir.json"))
    assert p.reason == ("fio moved no data: every job read and wrote 0 bytes (fio: failed to create dir "
                        "(/proc/rackform-missing): No such file or directory)")
    assert failed("fio", "fio: unrecognized option '--bogus'\n").reason.startswith("no fio JSON found")
    assert failed("fio", '{"jobs": [{"read": {"io_bytes": 4096, "bw": 4}}]}').reason == (
        "unreadable fio output: it has no 'iops' field where one belongs")
    assert "unreadable fio output" in failed("fio", '{"jobs": [{"read": {"io_bytes": 4096, "bw_bytes": "x", '
                                                    '"iops": 1}}]}').reason


# --- sysbench --------------------------------------------------------------------------------------------------


def test_sysbench_cpu_1_0():
    p = ok("sysbench-cpu", "sysbench/cpu-1.0.20.txt")
    assert value(p, "events_per_second") == 1797.97
    assert value(p, "latency_avg_ms") == 2.22 and value(p, "latency_p95_ms") == 8.28
    assert p.details == {"version": "1.0.20", "threads": "4"}


def test_sysbench_cpu_1_1_throughput_block():
    p = ok("sysbench-cpu", "sysbench/cpu-1.1.0.txt")
    assert value(p, "events_per_second") == 45.36
    assert value(p, "latency_avg_ms") == 22.05 and value(p, "latency_p95_ms") == 21.89
    eps_only = fixture("sysbench/cpu-1.1.0.txt").replace("    events per second:    45.36\n", "")
    assert value(ok_text("sysbench-cpu", eps_only), "events_per_second") == 45.3573


def test_sysbench_cpu_without_events_per_second_line():
    p = ok("sysbench-cpu", "sysbench/cpu-1.0.7.txt")
    assert value(p, "events_per_second") == pytest.approx(9083 / 10.0005)
    assert "total number of events / total time" in p.details["events_per_second"]


def test_sysbench_memory():
    p = ok("sysbench-memory", "sysbench/memory-1.0.20.txt")
    assert value(p, "transfer_mib_per_s") == 19144.87 and value(p, "ops_per_second") == 19144.87
    assert p.details == {"version": "1.0.20", "threads": "4", "block_size": "1024KiB", "total_size": "1073741824MiB",
                         "operation": "write", "scope": "global"}


def test_sysbench_failures():
    assert failed("sysbench-memory", fixture("sysbench/fatal.txt")).reason == (
        "sysbench failed: Invalid value for memory-block-size: 3")
    assert failed("sysbench-cpu", fixture("sysbench/memory-1.0.20.txt")).reason.startswith(
        "not `sysbench cpu` output")
    assert failed("sysbench-memory", fixture("sysbench/cpu-1.0.20.txt")).reason.startswith(
        "no 'MiB transferred (X MiB/sec)' line")
    cut = fixture("sysbench/cpu-1.0.20.txt").split("CPU speed:")[0]
    assert failed("sysbench-cpu", cut).reason.startswith("no sysbench cpu result")


# --- fi_pingpong -----------------------------------------------------------------------------------------------


def test_fi_pingpong_all_sizes():
    p = ok("fi_pingpong", "fi_pingpong/tcp-rdm-all-sizes.txt")
    assert len([m for m in p.metrics if m.name == "bandwidth"]) == 46
    assert value(p, "bandwidth", 1048576) == 139.01 and value(p, "latency_us", 1048576) == 7543.29
    assert value(p, "bandwidth", 1536) == 300.00  # "1.5k"
    assert value(p, "latency_us", 6291456) == 4062.46  # "6m"
    assert value(p, "latency_us", 0) == 184.54
    assert value(p, "bandwidth_max") == 2054.50  # the 256k row
    assert value(p, "latency_min_us") == 3.91  # the 16-byte row
    assert all(m.unit == "MB/s" for m in p.metrics if m.name.startswith("bandwidth"))
    assert p.details == {}


def test_fi_pingpong_default_sizes_and_provider():
    p = ok("fi_pingpong", "fi_pingpong/sockets-dgram.txt")
    assert [m.size_bytes for m in p.metrics if m.name == "bandwidth"] == [64, 256, 1024, 4096, 65536, 1048576]
    assert value(p, "bandwidth_max") == 169.33 and value(p, "latency_min_us") == 4802.20
    verbose = ok("fi_pingpong", "fi_pingpong/tcp-rdm-verbose.txt")
    assert verbose.details == {"provider": "tcp;ofi_rxm"}
    assert value(verbose, "latency_us", 4096) == 177.35


def test_fi_pingpong_reads_the_first_of_two_tables():
    p = ok("fi_pingpong", "fi_pingpong/efa_test-server-and-client.txt")
    assert p.details == {"tables": "2"}
    assert value(p, "bandwidth", 1048576) == 15397.59  # the server's table, printed first
    assert value(p, "latency_min_us") == 8.00


def test_fi_pingpong_ack_mismatch_and_failures():
    text = fixture("fi_pingpong/sockets-dgram.txt").replace("=10      20m", "-9       20m")
    assert ok_text("fi_pingpong", text).details["ack_mismatch"] == "1048576:10/-9"
    assert failed("fi_pingpong", fixture("fi_pingpong/no-server.txt")).reason == (
        "fi_pingpong failed: [error] util/pingpong.c:408 : failed to connect: Connection refused")
    cut = fixture("fi_pingpong/tcp-rdm-all-sizes.txt").split("1.5m")[0] + fixture("fi_pingpong/no-server.txt")
    assert ok_text("fi_pingpong", cut).details["error"].startswith("[error] util/pingpong.c:408")
    header_only = fixture("fi_pingpong/sockets-dgram.txt").splitlines()[0]
    assert failed("fi_pingpong", header_only).reason.startswith("fi_pingpong printed its table header but no result")


# --- iperf3 ----------------------------------------------------------------------------------------------------


def test_iperf3_tcp():
    p = ok("iperf3", "iperf3/tcp.json")
    assert value(p, "bandwidth_gbps") == 23770964733.046116 / 1e9
    assert value(p, "sent_gbps") == 23790348907.331936 / 1e9
    assert value(p, "retransmits") == 3
    assert p.details == {"version": "iperf 3.12", "protocol": "TCP", "streams": "1", "duration_s": "2"}


def test_iperf3_udp_has_no_retransmits():
    p = ok("iperf3", "iperf3/udp.json")
    assert value(p, "bandwidth_gbps") == 100113078.71261343 / 1e9
    assert {m.name for m in p.metrics} == {"bandwidth_gbps", "sent_gbps", "lost_percent"}


def test_iperf3_failures():
    p = failed("iperf3", fixture("iperf3/connection-refused.json"))
    assert p.reason == "iperf3 failed: unable to connect to server: Connection refused"
    assert failed("iperf3", "iperf3: error - unable to connect to server\n").reason.startswith("no iperf3 JSON")
    assert "did not finish" in failed("iperf3", '{"start": {}, "end": {}}').reason


# --- properties ------------------------------------------------------------------------------------------------

FIXTURES = sorted(p.relative_to(DATA).as_posix() for p in DATA.rglob("*")
                  if p.is_file() and p.name not in ("README.md", "expected.json"))
JSON = st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
                        st.sampled_from(["results", "jobs", "read", "io_bytes", "bw_bytes", "end", "sum_received",
                                         "error", "out_of_place", "size", "time", "alg_bw", "bus_bw", "size(B)",
                                         "time:avg(us)", "algbw(GB/s)", "busbw(GB/s)", "bits_per_second"]),
                        inner, max_size=6), max_leaves=20)


@settings(max_examples=150, deadline=None)
@given(tool=st.sampled_from(TOOLS), text=st.text())
def test_random_text_never_raises_and_never_passes(tool, text):
    parsed = parse(tool, text)
    assert not parsed.ok and parsed.reason and not parsed.metrics


@settings(max_examples=150, deadline=None)
@given(tool=st.sampled_from(TOOLS), doc=JSON)
def test_json_of_any_shape_never_raises(tool, doc):
    parsed = parse(tool, json.dumps(doc))
    assert parsed.ok or (parsed.reason and not parsed.metrics)


@settings(max_examples=150, deadline=None)
@given(path=st.sampled_from(FIXTURES), cut=st.floats(0, 1), tool=st.sampled_from(TOOLS))
def test_cut_off_fixtures_never_raise(path, cut, tool):
    text = fixture(path)
    parsed = parse(tool, text[:int(len(text) * cut)])
    assert all(m.value == m.value for m in parsed.metrics)  # no NaN slips through
    assert parsed.ok or (parsed.reason and not parsed.metrics)


# --- published outputs: every fixture parses to the figure a reader takes from it --------------------------------
# expected.json holds, per fixture, what a person reading the output would take (README.md says where each comes
# from); only unit conversions (GiB/s, KiB/s) and sysbench's events / seconds were computed.

EXPECTED = json.loads((DATA / "expected.json").read_text())
READINGS = [(path, reading) for path, readings in EXPECTED.items() for reading in readings]


def test_every_fixture_has_an_expected_reading():
    assert sorted(EXPECTED) == FIXTURES


@pytest.mark.parametrize(("path", "reading"), READINGS,
                         ids=[f"{path}:{r['tool']}:{r.get('metric', 'fails')}:{r.get('labels', '')}"
                              for path, r in READINGS])
def test_fixture_parses_to_what_a_reader_takes(path, reading):
    parsed = parse(reading["tool"], fixture(path))
    if reading.get("ok", True) is False:
        assert not parsed.ok and not parsed.metrics and reading["reason"] in parsed.reason, parsed
        return
    assert parsed.ok, parsed.reason
    found = [m for m in parsed.metrics if m.name == reading["metric"] and m.size_bytes == reading.get("size_bytes")
             and reading.get("labels", {}).items() <= m.labels.items()]
    assert len(found) == 1, found
    assert found[0].value == pytest.approx(reading["value"], rel=1e-9) and found[0].unit == reading["unit"]
    assert reading.get("details", {}).items() <= parsed.details.items(), parsed.details


def test_fio_groups_that_run_one_after_another_are_reported_per_group_never_summed():
    # Three stonewall groups (1, 5 and 10 jobs, group_reporting): each group's figure, labelled, and no total.
    p = ok("fio", "fio/3.16-three-stonewall-groups.json")
    assert [(m.labels["group"], m.value) for m in p.metrics if m.name == "read_iops"] == [
        ("0", 6793.813746), ("1", 15107.459503), ("2", 19835.249808)]
    assert value(p, "read_lat_p99_us", group="2", job="test1-subtest10-blocksize8k-threads10-device1of5") == 5210.112
    assert p.details["groups"] == "3"
    assert all(m.labels for m in p.metrics)


def test_fio_2_reports_kib_per_second_and_microseconds():
    p = ok("fio", "fio/2.2.10-write-kib-per-s.json")
    assert value(p, "write_bw") == pytest.approx(62499 * 1024 / 1e6)
    assert value(p, "write_lat_p50_us") == 8160 and value(p, "write_lat_mean_us") == pytest.approx(8151.19)


def test_sysbench_0_4_prints_no_events_per_second_so_it_comes_from_the_totals():
    p = ok("sysbench-cpu", "sysbench/0.4.12-cpu-memory-scaleway-vcm1.md")
    assert value(p, "events_per_second") == pytest.approx(10000 / 46.1131)
    assert value(p, "latency_avg_ms") == 4.61 and value(p, "latency_p95_ms") == 4.65
    assert "total number of events / total time" in p.details["events_per_second"]
    memory = ok("sysbench-memory", "sysbench/0.4.12-cpu-memory-scaleway-vcm1.md")
    assert value(memory, "transfer_mib_per_s") == 3855.80 and value(memory, "ops_per_second") == 3855.80


@pytest.mark.parametrize("cpu_first", [True, False])
def test_sysbench_details_come_from_the_run_the_figure_comes_from(cpu_first):
    # A 1-thread cpu run and a 4-thread, 1 MiB-block memory run in one log, in either order.
    cpu = fixture("sysbench/1.0.20-cpu-memory-fileio-guide.txt").split("$ sysbench memory run")[0]
    memory = fixture("sysbench/memory-1.0.20.txt")
    text = cpu + memory if cpu_first else memory + cpu
    p = ok_text("sysbench-cpu", text)
    assert value(p, "events_per_second") == 4368.44 and p.details["threads"] == "1"
    m = ok_text("sysbench-memory", text)
    assert value(m, "transfer_mib_per_s") == 19144.87
    assert m.details["threads"] == "4" and m.details["block_size"] == "1024KiB"


def test_sysbench_several_runs_of_one_test_are_refused_not_picked():
    text = fixture("sysbench/cpu-1.0.20.txt") + fixture("sysbench/1.0.20-cpu-memory-fileio-guide.txt")
    assert failed("sysbench-cpu", text).reason == (
        "2 sysbench cpu runs in one output (threads=4, threads=1): give the parser one run at a time")


PREFIXES = ["[rank 0] ", "[1,0]<stdout>:", "[0] ", "node-1: ", "0: ", "ip-10-0-0-1: [1,1]<stdout>:"]
CLEAN = {"nccl-tests": "nccl-tests/all_reduce-3ranks.txt", "nccom-test": "nccom-test/allr-2ranks-fp32-neuron-2.10.txt",
         "fio": "fio/rand-read.json", "sysbench-cpu": "sysbench/cpu-1.0.20.txt",
         "sysbench-memory": "sysbench/memory-1.0.20.txt", "fi_pingpong": "fi_pingpong/tcp-rdm-all-sizes.txt",
         "iperf3": "iperf3/tcp.json"}


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("tool", TOOLS)
def test_launcher_prefixes_are_stripped_for_every_tool(tool, prefix):
    text = fixture(CLEAN[tool])
    plain = ok_text(tool, text)
    prefixed = ok_text(tool, "".join(prefix + line for line in text.splitlines(keepends=True)))
    assert prefixed.metrics == plain.metrics and prefixed.details == plain.details


def test_tool_messages_are_not_taken_for_host_prefixes():
    # "FATAL: ..." starts a line the way "node-1: ..." does; it is sysbench's own message, and is kept.
    assert failed("sysbench-memory", "FATAL: Invalid value for memory-block-size: 3\n").reason == (
        "sysbench failed: Invalid value for memory-block-size: 3")


def test_iperf3_receiver_that_measured_nothing_is_not_a_bandwidth_of_zero():
    p = failed("iperf3", fixture("iperf3/3.6-receiver-measured-nothing.json"))
    assert p.reason == "iperf3's receiver measured nothing: 0 bytes received in 0.0769279 s (56320 bytes sent)"
    assert p.details["version"] == "iperf 3.6"


def test_iperf3_interrupted_run_after_a_terminal_ctrl_c_echo():
    assert failed("iperf3", fixture("iperf3/3.6-interrupted.json")).reason == (
        "iperf3 failed: interrupt - the client has terminated")


# --- second held-out round (issue 17 item 9): one test per class of published output ---------------------------


def test_nccl_tests_blank_redop_cell_reads_the_columns_by_position():
    # alltoall_perf before September 2022 prints six blanks for redop: each row is one token short of its header.
    p = ok("nccl-tests", "nccl-tests/alltoall-blank-redop-nccl-tests-issue-78.txt")
    assert len([m for m in p.metrics if m.name == "busbw"]) == 2 * 2
    assert value(p, "time_us", 268435456, placement="out-of-place") == 520935
    assert value(p, "algbw", 536870912, placement="in-place") == 0.52
    assert value(p, "busbw_max") == 0.51 and value(p, "busbw_avg_reported") == 0.507636
    assert "redop" not in p.details and "truncated" not in p.details


def test_nccl_tests_blank_redop_beside_a_root_column():
    # August to September 2022 builds print a root column too, and still a blank redop for alltoall (src/common.cu
    # at 51af557: "%12li  %12li  %8s  %6s  %6s" with opName "" and root -1).
    text = fixture("nccl-tests/all_reduce-3ranks.txt")
    blank = re.sub(r"(?m)^( +[0-9]+ +[0-9]+ +float)     sum", r"\1        ", text)
    assert blank != text
    p = ok_text("nccl-tests", blank)
    assert p.metrics == ok_text("nccl-tests", text).metrics and "redop" not in p.details


def test_nccl_tests_row_cut_at_its_end_is_not_taken_for_a_blank_redop():
    # One token short as well, but its redop cell holds a word: the row lost its last cell, so it is no row.
    lines = fixture("nccl-tests/all_reduce-3ranks.txt").splitlines()
    [at] = [i for i, line in enumerate(lines) if line.split()[:1] == ["536870912"]]
    cut = "\n".join(lines[:at] + [lines[at].rsplit(None, 1)[0]] + lines[at + 1:])
    assert not [m for m in ok_text("nccl-tests", cut).metrics if m.size_bytes == 536870912]


def test_nccl_tests_rank_count_survives_lost_hashes_and_tag_output():
    # Pasted outside a code block, the '#' of every line is gone ("   Rank  0 Pid ..."), and no NCCL_DEBUG line
    # says nranks: the rank lines are the only count.
    p = failed("nccl-tests", fixture("nccl-tests/all_reduce-8ranks-lost-hash-nccl-issue-583-excerpt.txt"))
    assert p.reason.startswith("nccl-tests printed its table header but no result rows") and p.details["ranks"] == "8"
    text = fixture("nccl-tests/all_reduce-12gpu-old-error-column.txt")
    lost = re.sub(r"(?m)^#(\s+Rank )", r"\1", text)
    assert lost != text
    for variant in (lost, "".join("[1,0]<stdout>:" + line for line in lost.splitlines(keepends=True))):
        assert ok_text("nccl-tests", variant).details["ranks"] == "12"


def test_fio_that_timed_nothing_reports_no_latency_rather_than_zero():
    p = ok("fio", "fio/3.33-gtod-reduce-no-latency.json")  # gtod_reduce=1: every latency block zeros, "N": 0
    assert {m.name for m in p.metrics} == {"read_bw", "read_iops"}
    text = fixture("fio/2.2.10-write-kib-per-s.json")
    doc = json.loads(text[text.index("{"):])
    for block in ("slat", "clat", "lat"):  # fio 2 writes no N: its zeros are the same nothing
        doc["jobs"][0]["write"][block] = {"min": 0, "max": 0, "mean": 0.0, "stddev": 0.0}
    assert {m.name for m in ok_text("fio", json.dumps(doc)).metrics} == {"write_bw", "write_iops"}


def test_nccom_test_one_table_per_stream_is_never_merged():
    p = ok("nccom-test", "nccom-test/multistream-two-tables-neuron-2.32.txt")
    assert p.details["streams"] == "2" and "collective" not in p.details  # the streams JSON names each operation
    assert all("stream" in m.labels for m in p.metrics)
    for stream, peak, avg in (("0", 16.71, 3.1756), ("1", 0.0, 0.0039)):
        assert len([m for m in p.metrics if m.name == "busbw" and m.labels["stream"] == stream]) == 11
        assert value(p, "busbw_max", stream=stream) == peak and value(p, "busbw_avg_reported", stream=stream) == avg
    assert value(p, "time_us", 1048576, placement="out-of-place", stream="0") == 117.67


def test_iperf3_server_side_json_reports_no_sender_figures():
    p = ok("iperf3", "iperf3/3.12-server-side.json")
    assert {m.name for m in p.metrics} == {"bandwidth_gbps"} and p.details["side"] == "server"
    assert value(p, "bandwidth_gbps") == 22608352269.6374 / 1e9
    udp = ok("iperf3", "iperf3/3.12-server-side-udp.json")
    assert {m.name for m in udp.metrics} == {"bandwidth_gbps", "lost_percent"}
    assert failed("iperf3", fixture("iperf3/3.12-server-side-reverse.json")).reason == (
        "the server's JSON of a --reverse test holds no received figure (the server sent): read the client's -J "
        "output")


def test_fi_pingpong_table_cut_after_mb_per_sec_still_gives_its_bandwidth():
    p = ok("fi_pingpong", "fi_pingpong/efa-cut-after-mbsec-modal.txt")
    assert [(m.size_bytes, m.value) for m in p.metrics if m.name == "bandwidth"] == [
        (64, 1.77), (256, 14.80), (1024, 57.21), (4096, 215.58)]
    assert value(p, "bandwidth_max") == 215.58
    assert not [m for m in p.metrics if "latency" in m.name]
