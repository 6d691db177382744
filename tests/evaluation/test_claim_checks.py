"""The notebook's claims judged across seeds, on numbers worked out by hand (t(0.975, 2) =
4.302653)."""

from __future__ import annotations

import pytest

from intro_cnn.evaluation import claim_checks, claims
from intro_cnn.replicates.outputs import SeedResult

PARAMS = {"cnn": 61_482, "mlp": 669_706, "cnn_small": 14_178, "cnn_small_bn": 14_242}


def runs_of(model: str, tests, vals=None, histories=None) -> list[SeedResult]:
    vals = vals or tests
    histories = histories or [(v,) for v in vals]
    return [
        SeedResult(model, seed, t, v, tuple(h))
        for seed, t, v, h in zip(range(1, len(tests) + 1), tests, vals, histories, strict=True)
    ]


def judged(**runs) -> dict[str, claims.Claim]:
    return {c.id: c for c in claim_checks.judge_claims(runs, PARAMS)}


def test_one_cnn_run_against_mlp_replicates_holds_beyond_their_spread():
    # mlp 0.981, 0.982, 0.983: mean 0.982, sd 0.001; half = 4.302653 * 0.001 * sqrt(4/3)
    c = judged(cnn=runs_of("cnn", [0.991]), mlp=runs_of("mlp", [0.981, 0.982, 0.983]))["cnn_vs_mlp"]
    assert c.verdict == claims.HOLDS
    iv = c.intervals["better test accuracy"]
    assert (iv["rule"], iv["a"], iv["b"]) == ("one against sample", 0.991, pytest.approx(0.982))
    assert (iv["low"], iv["high"]) == pytest.approx(
        (0.009 - 0.0049683, 0.009 + 0.0049683), abs=1e-7
    )
    assert "cnn 0.9910 vs mlp 0.9820" in c.reason
    assert "difference +0.90 points, 95 % interval [+0.40, +1.40]: yes" in c.reason
    assert "61\u202f482" in c.reason and "9.2 %" in c.reason
    assert c.statement == claims.statement("cnn_vs_mlp", "en")


def test_a_difference_inside_the_spread_is_noise_and_one_below_it_fails():
    noise = judged(cnn=runs_of("cnn", [0.984]), mlp=runs_of("mlp", [0.981, 0.982, 0.983]))
    c = noise["cnn_vs_mlp"]
    assert c.parts == {"better test accuracy": claims.NOISE, "far fewer parameters": True}
    assert c.verdict == claims.PARTLY
    assert c.reason.endswith(
        "Holds: far fewer parameters (less than half). "
        "Not distinguishable from seed noise: better test accuracy."
    )
    worse = judged(cnn=runs_of("cnn", [0.970]), mlp=runs_of("mlp", [0.981, 0.982, 0.983]))
    assert worse["cnn_vs_mlp"].parts["better test accuracy"] is False
    assert "Does not hold: better test accuracy." in worse["cnn_vs_mlp"].reason


def test_one_run_each_proves_nothing_about_a_difference():
    c = judged(cnn=runs_of("cnn", [0.991]), mlp=runs_of("mlp", [0.982]))["cnn_vs_mlp"]
    assert c.parts["better test accuracy"] is None
    assert c.verdict == claims.PARTLY  # an unchecked part keeps the claim from holding whole
    assert "one run each (seed 1): +0.90 points, with no interval: not checked" in c.reason
    assert c.reason.endswith("Not checked: better test accuracy.")


def test_batchnorm_paired_over_seeds():
    plain = runs_of(
        "cnn_small",
        [0.984, 0.985, 0.986],
        [0.98, 0.98, 0.98],
        [(0.93, 0.96, 0.975, 0.98)] * 3,
    )
    bn = runs_of(
        "cnn_small_bn",
        [0.988, 0.989, 0.990],  # +0.004 on every seed: the interval is that point
        [0.99, 0.98, 0.985],  # +0.010, 0, +0.005: mean 0.005, half 4.302653 * 0.005 / sqrt(3)
        [(0.97, 0.98, 0.985, 0.99), (0.96, 0.98, 0.985, 0.99), (0.97, 0.97, 0.985, 0.99)],
    )
    c = judged(cnn_small=plain, cnn_small_bn=bn)["batchnorm"]
    assert c.parts == {
        "higher validation accuracy": claims.NOISE,
        "higher test accuracy": True,
        "faster early rise": True,
    }
    val = c.intervals["higher validation accuracy"]
    assert (val["mean"], val["low"], val["high"]) == pytest.approx(
        (0.005, 0.005 - 0.0124207, 0.005 + 0.0124207), abs=1e-6
    )
    early = c.intervals["faster early rise"]
    assert early["early_epochs"] == 3 and early["seeds"] == [1, 2, 3]
    # mean over epochs 1-3 per seed: bn 0.97833, 0.975, 0.975 vs plain 0.955 each
    assert early["a"] == pytest.approx((2.935 + 2.925 + 2.925) / 9)
    assert early["b"] == pytest.approx(0.955)
    assert c.verdict == claims.PARTLY
    assert "Not distinguishable from seed noise: higher validation accuracy." in c.reason
    assert "(mean validation accuracy over epochs 1-3): cnn_small_bn 0.9761 vs cnn_small" in (
        c.reason
    )


def test_the_early_sentence_never_contradicts_its_numbers():
    # Lower at epoch 1 on every seed, higher over epochs 1-3 by a hair that seeds spread over.
    plain = runs_of("cnn_small", [0.985] * 3, histories=[(0.965, 0.97, 0.975)] * 3)
    bn = runs_of(
        "cnn_small_bn",
        [0.985] * 3,
        histories=[(0.956, 0.98, 0.976), (0.956, 0.975, 0.975), (0.956, 0.985, 0.97)],
    )
    c = judged(cnn_small=plain, cnn_small_bn=bn)["batchnorm"]
    early = c.intervals["faster early rise"]
    assert early["low"] < 0 < early["high"]
    assert c.parts["faster early rise"] == claims.NOISE
    assert "rises faster: yes" not in c.reason and "epoch 1:" not in c.reason
    # Equal test and validation accuracy on every seed: an interval of exactly 0 holds 0.
    assert c.parts["higher test accuracy"] == claims.NOISE


def test_every_part_noise_is_its_own_verdict_and_every_part_below_fails():
    a = runs_of("cnn_small", [0.985, 0.986, 0.984], histories=[(0.95, 0.96, 0.97)] * 3)
    b = runs_of("cnn_small_bn", [0.986, 0.984, 0.985], histories=[(0.96, 0.95, 0.97)] * 3)
    c = judged(cnn_small=a, cnn_small_bn=b)["batchnorm"]
    assert c.verdict == claims.NOT_DISTINGUISHABLE
    assert c.reason.endswith("The claim is not distinguishable from seed noise.")
    low = runs_of("cnn_small_bn", [0.975, 0.976, 0.974], histories=[(0.90, 0.91, 0.92)] * 3)
    assert judged(cnn_small=a, cnn_small_bn=low)["batchnorm"].verdict == claims.DOES_NOT_HOLD


def test_a_claim_whose_model_is_not_trained_is_not_checked():
    c = judged(cnn=runs_of("cnn", [0.99]))["cnn_vs_mlp"]
    assert (c.verdict, c.missing) == (claims.NOT_CHECKED, ["mlp"])
    assert "Model(s) mlp not in params.yaml" in c.reason


@pytest.mark.parametrize("lang", ["es", "en"])
def test_every_sentence_renders_from_claims_json_in_both_languages(lang):
    from dataclasses import asdict

    runs = {
        "cnn": runs_of("cnn", [0.991]),
        "mlp": runs_of("mlp", [0.981, 0.982, 0.983]),
        "cnn_small": runs_of("cnn_small", [0.985, 0.986], histories=[(0.9, 0.95)] * 2),
        "cnn_small_bn": runs_of("cnn_small_bn", [0.987, 0.986], histories=[(0.92, 0.96)] * 2),
    }
    for claim in claim_checks.judge_claims(runs, PARAMS):
        back = claims.Claim.from_json(asdict(claim))
        assert back == claim
        text = claims.reason(back, lang) + claims.verdict_sentence(back, lang)
        assert "{" not in text and "0.98" in text
