"""`rackform advise`: the tier with the best measured performance per dollar, by how much, and on what evidence."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from rackform.cli import main
from rackform.reference.peaks import limits_for
from rackform.analysis.advise import advise, advise_benchmark, class_verdict
from rackform.analysis.report import report_rows
from workloads.store import ResultStore

from tests.records import BUS_16, GIB, MIB, allreduce_metrics, m, record, run_records

BUCKET = "rackform-advise-test"


def rows(records):
    return report_rows(records, limits_for)


def by_benchmark(advice):
    return {a.benchmark: a for a in advice}


def test_picks_the_tier_with_the_best_measured_value_per_dollar():
    advice = by_benchmark(advise(rows(run_records("r1", gpu_algbw=225.0, gemm=700.0, p50=9.0))))
    allreduce = advice["allreduce"]
    # gpu: 225 GB/s x 3.6 / 110.08 $/h; trainium: 50 GB/s x 3.6 / 43 $/h
    assert (allreduce.winner.tier, allreduce.winner.instance_type) == ("gpu", "p5.48xlarge")
    assert allreduce.runner_up.tier == "trainium"
    assert allreduce.ratio == pytest.approx((225 * 3.6 / 110.08) / (50 * 3.6 / 43.0))
    assert [(r.run_id, r.rack, r.node_group) for r in allreduce.evidence] == [("r1", "gpu", "h100"),
                                                                             ("r1", "trainium", "workers")]
    assert advice["gemm"].winner.tier == "gpu"  # 700 TFLOP/s x 8 per 55.04 $/h beats 0.5 per 0.1632 $/h


def test_the_cheaper_tier_wins_per_dollar_though_slower():
    inference = by_benchmark(advise(rows(run_records("r1", gpu_algbw=225.0, gemm=700.0, p50=9.0))))["inference"]
    # graviton: 200 tokens/s x 3600 / 0.1632 $/h = 4.41M tokens/$; gpu: 2,000 x 8 x 3600 / 55.04 = 1.05M tokens/$
    assert inference.winner.tier == "graviton" and inference.runner_up.tier == "gpu"
    slower = next(r for r in inference.evidence if r.tier == "graviton")
    faster = next(r for r in inference.evidence if r.tier == "gpu")
    assert slower.value < faster.value
    assert inference.ratio == pytest.approx((200 * 3600 / 0.1632) / (2000 * 8 * 3600 / 55.04))
    assert "4.22x the runner-up gpu (p5.48xlarge)" in inference.verdict


def test_one_tier_only_and_unknown_prices_are_said_not_guessed():
    advice = by_benchmark(advise(rows(run_records("r1", gpu_algbw=225.0, gemm=700.0, p50=9.0))))
    assert "only the graviton tier has storage data" in advice["storage"].verdict
    cpu = advice["cpu"]  # the only cpu record has no price
    assert cpu.winner is None and cpu.ratio is None
    assert cpu.verdict == "cannot advise on cost for cpu: no price known for graviton (m7g.xlarge)"
    assert class_verdict("general CPU work", list(advice.values())) == (
        "general CPU work -> graviton (graviton/head): the only priced storage result (5,515 GB/$) "
        "(cpu: no priced result)")


def test_unpriced_candidates_are_listed_but_never_ranked():
    recs = [record("r", "allreduce", "gpu", "h100", "gpu", "p5.48xlarge",
                   allreduce_metrics({MIB: 10.0, GIB: 300.0}, BUS_16), nodes=2, price=None),
            record("r", "allreduce", "trainium", "workers", "trainium", "trn1.32xlarge",
                   allreduce_metrics({GIB: 50.0}, 2 * 63 / 64), nodes=2, price=43.0)]
    a = advise_benchmark("training", "allreduce", rows(recs))
    assert a.winner.tier == "trainium" and a.runner_up is None and a.ratio is None
    assert "not ranked, price unknown: gpu (p5.48xlarge)" in a.verdict


def test_median_over_runs_and_a_split_class_verdict():
    slow = run_records("r1", gpu_algbw=100.0, gemm=700.0, p50=9.0)
    fast = run_records("r2", gpu_algbw=300.0, gemm=700.0, p50=9.0)
    advice = advise(rows(slow + fast))
    allreduce = by_benchmark(advice)["allreduce"]
    assert allreduce.winner.jobs == 2 and allreduce.winner.per_dollar == pytest.approx(200 * 3.6 / 110.08)
    # gpu wins allreduce and gemm: one tier for training, the verdict first with by how much and why; its two
    # allreduce runs (100 and 300 GB/s) span trainium's figure, so that ranking is within noise.
    assert class_verdict("training", advice) == (
        "training -> gpu (gpu/h100): 1.56x the TB all-reduced per dollar of trainium (trainium/workers) on allreduce "
        "(within noise), because it measured 6.54 TB/$ against 4.19 TB/$; 33.21x the TFLOP (bf16) per dollar of "
        "graviton (graviton/head) on gemm, because it measured 366,279 TFLOP/$ against 11,029 TFLOP/$")
    assert allreduce.within_noise and "within noise: the two overlap across repeats" in allreduce.verdict
    assert not by_benchmark(advise(rows(fast)))["allreduce"].within_noise  # one run each: no overlap
    cheap_gemm = [record("r3", "gemm", "graviton", "head", "graviton", "m7g.xlarge",
                         [m("tflops_max", 100.0, "TFLOP/s", dtype="bf16")], price=0.1632)]
    split = advise(rows(fast + cheap_gemm))
    assert class_verdict("training", split) == "training: split, allreduce favours gpu; gemm favours graviton"


def test_cli_advises_across_runs_with_the_rehearsal_caveat(capsys, monkeypatch):
    monkeypatch.delenv("RACKFORM_BUCKET", raising=False)
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        store = ResultStore(BUCKET, s3)
        for r in run_records("a", gpu_algbw=225.0, gemm=700.0, p50=9.0) + \
                run_records("b", gpu_algbw=250.0, gemm=690.0, p50=9.0, local_cpu=False):
            store.put_record(r)
        args = ["--bucket", BUCKET, "--region", "us-east-1"]
        assert main(["advise", "a", "b", *args]) == 0
        out = capsys.readouterr().out
        assert out.startswith("LOCAL REHEARSAL") and out.rstrip().endswith("priced as that instance")
        assert "inference -> graviton (graviton/head): 4.22x the " in out
        assert "m7g.xlarge [local]" in out
        assert main(["advise", "a", "--json", *args]) == 0
        doc = json.loads(capsys.readouterr().out)
        assert doc["local_rehearsal"] is True and doc["caveat"].startswith("LOCAL REHEARSAL")
        gemm = next(a for a in doc["advice"] if a["benchmark"] == "gemm")
        assert gemm["winner"]["tier"] == "gpu" and gemm["evidence"][0]["run_id"] == "a"
        assert main(["advise", "a", "missing", *args]) == 1


def test_only_invalid_results_are_named_as_such_not_ranked():
    rec = record("r", "inference", "gpu", "h100", "gpu", "p5.48xlarge", [m("tokens_per_second", 9e9, "tokens/s")],
                 price=55.04).model_copy(update={"validity": "invalid", "invalid_reason": "node 1: efa: 0 of 32"})
    advice = advise_benchmark("inference", "inference", rows([rec]))
    assert advice.winner is None and advice.evidence == ()
    assert advice.verdict == ("no valid succeeded inference results in these runs (invalid, a node failed its "
                              "health check: gpu (p5.48xlarge))")


def test_a_verdict_names_a_few_node_groups_and_counts_the_rest():
    """A run over many racks: the verdict names NAMED_GROUPS of them and counts the others; the evidence keeps all."""
    from rackform.analysis.advise import NAMED_GROUPS

    base = run_records("r1", gpu_algbw=225.0, gemm=700.0, p50=9.0)
    gpu = [r for r in base if r.tier == "gpu" and r.benchmark == "allreduce"][0]
    many = [*base, *(gpu.model_copy(update={"rack": f"gpu{i:02d}"}) for i in range(12))]
    allreduce = by_benchmark(advise(rows(many)))["allreduce"]
    assert allreduce.winner.groups == f"gpu/h100, gpu00/h100, gpu01/h100 and {13 - NAMED_GROUPS} more"
    verdict = class_verdict("training", advise(rows(many)))
    assert "gpu05/h100" not in verdict and f"and {13 - NAMED_GROUPS} more" in verdict
    assert len([r for r in allreduce.evidence if r.tier == "gpu"]) == 13
