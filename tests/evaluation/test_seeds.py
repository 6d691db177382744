"""Seed-noise statistics against numbers worked out by hand (t quantiles from tables:
t(0.975, 2) = 4.302653, t(0.99, 4) = 3.746947)."""

from __future__ import annotations

import math

import pytest

from intro_cnn.evaluation import seeds


def test_summary_is_the_t_interval_of_the_mean() -> None:
    s = seeds.summarise([0.98, 0.99, 1.00])
    assert (s.n, s.mean, s.std) == (3, pytest.approx(0.99), pytest.approx(0.01))
    half = 4.302653 * 0.01 / math.sqrt(3)  # 0.024841
    assert s.low == pytest.approx(0.99 - half, abs=1e-7)
    assert s.high == pytest.approx(0.99 + half, abs=1e-7)


def test_one_replicate_has_no_interval() -> None:
    s = seeds.summarise([0.98])
    assert (s.n, s.mean, s.std, s.low, s.high) == (1, 0.98, 0.0, 0.98, 0.98)
    with pytest.raises(ValueError, match="no replicates"):
        seeds.summarise([])


def test_paired_difference_uses_shared_seeds_only() -> None:
    a = {1: 0.99, 2: 0.98, 3: 0.985, 9: 0.5}
    b = {1: 0.98, 2: 0.97, 3: 0.975, 7: 0.9}
    d = seeds.paired_difference(a, b)
    assert d.seeds == (1, 2, 3)
    assert (d.mean, d.low, d.high) == pytest.approx((0.01, 0.01, 0.01))
    assert seeds.direction(d) == seeds.BETTER
    with pytest.raises(ValueError, match="share no seed"):
        seeds.paired_difference({1: 0.9}, {2: 0.9})


def test_an_interval_holding_zero_is_not_distinguishable() -> None:
    d = seeds.paired_difference({1: 0.99, 2: 0.97, 3: 0.985}, {1: 0.98, 2: 0.98, 3: 0.98})
    # differences 0.01, -0.01, 0.005: mean 0.001667, sd 0.010408, half width 0.025856
    assert d.mean == pytest.approx(0.0016667, abs=1e-6)
    assert d.low == pytest.approx(0.0016667 - 0.025856, abs=1e-5)
    assert d.high == pytest.approx(0.0016667 + 0.025856, abs=1e-5)
    assert seeds.direction(d) == seeds.INDISTINGUISHABLE


def test_an_interval_below_zero_fails_the_other_way() -> None:
    d = seeds.paired_difference({1: 0.97, 2: 0.968, 3: 0.969}, {1: 0.98, 2: 0.98, 3: 0.98})
    # differences -0.010, -0.012, -0.011: mean -0.011, sd 0.001, half width 0.002484
    assert d.high == pytest.approx(-0.011 + 0.002484, abs=1e-6)
    assert seeds.direction(d) == seeds.WORSE


def test_one_pair_is_unchecked() -> None:
    assert seeds.direction(seeds.paired_difference({1: 0.99}, {1: 0.98})) == seeds.UNCHECKED


def test_regression_is_welchs_one_sided_bound() -> None:
    base, new = [0.99, 0.991, 0.989], [0.984, 0.985, 0.983]
    r = seeds.regression(base, new, alpha=0.01)
    # se = sqrt(2 * 1e-6 / 3) = 0.00081650, df = 4: bound = 0.006 - 3.746947 * se
    assert r.df == pytest.approx(4.0)
    assert r.drop == pytest.approx(0.006)
    assert r.bound == pytest.approx(0.006 - 3.746947 * 0.00081650, abs=1e-6)
    assert r.regressed
    assert not seeds.regression(base, new, alpha=0.01, tolerance=0.003).regressed


def test_noise_alone_is_no_regression() -> None:
    r = seeds.regression([0.985, 0.988, 0.986], [0.987, 0.984, 0.986], alpha=0.01)
    assert not r.regressed
    assert r.bound < 0


def test_regression_needs_two_replicates_a_side() -> None:
    with pytest.raises(ValueError, match="two replicates"):
        seeds.regression([0.99], [0.98, 0.97], alpha=0.01)


def test_false_alarm_rate_is_alpha_under_no_change() -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    trials = 4000
    alarms = sum(
        seeds.regression(
            list(rng.normal(0.986, 0.0015, 5)), list(rng.normal(0.986, 0.0015, 5)), alpha=0.01
        ).regressed
        for _ in range(trials)
    )
    assert alarms / trials == pytest.approx(0.01, abs=0.006)


def test_one_run_against_a_sample_is_a_prediction_interval() -> None:
    # sample 0.97, 0.98, 0.99: mean 0.98, s 0.01; half = 4.302653 * 0.01 * sqrt(4/3) = 0.049683
    d = seeds.one_against_sample(0.99, {2: 0.97, 3: 0.98, 4: 0.99})
    assert (d.rule, d.seeds) == (seeds.ONE_AGAINST_SAMPLE, (2, 3, 4))
    assert (d.mean, d.low, d.high) == pytest.approx(
        (0.01, 0.01 - 0.049683, 0.01 + 0.049683), abs=1e-6
    )
    assert seeds.direction(d) == seeds.INDISTINGUISHABLE
    far = seeds.difference({1: 0.99}, {1: 0.90, 2: 0.901, 3: 0.899})
    assert far.rule == seeds.ONE_AGAINST_SAMPLE
    assert seeds.direction(far) == seeds.BETTER
    flipped = seeds.difference({1: 0.90, 2: 0.901, 3: 0.899}, {1: 0.99})
    assert (flipped.mean, flipped.low, flipped.high) == pytest.approx(
        (-far.mean, -far.high, -far.low)
    )
    assert seeds.direction(flipped) == seeds.WORSE


def test_difference_pairs_when_it_can_and_else_says_it_cannot() -> None:
    paired = seeds.difference({1: 0.99, 2: 0.98, 3: 0.7}, {1: 0.98, 2: 0.97, 4: 0.1})
    assert (paired.rule, paired.seeds) == (seeds.PAIRED, (1, 2))
    single = seeds.difference({1: 0.99}, {1: 0.98})
    assert single.rule == seeds.SINGLE
    assert seeds.direction(single) == seeds.UNCHECKED
    with pytest.raises(ValueError, match="share no seed"):
        seeds.difference({1: 0.99}, {2: 0.98})
