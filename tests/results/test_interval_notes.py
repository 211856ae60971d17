"""Notes on intervals the coverage studies found to under-cover, and where they show."""

import numpy as np
import pandas as pd
import pytest

from misterp import LaplaceEngine, Survey, bootstrap, prepare
from misterp.apps.cli import main
from misterp.results.interval_notes import interval_notes


@pytest.fixture(scope="module")
def fits():
    rng = np.random.default_rng(3)
    g = rng.integers(0, 8, 300)
    data = pd.DataFrame({"y": rng.binomial(1, 1 / (1 + np.exp(-np.linspace(-1.5, 1.5, 8)[g]))),
                         "g": np.array(list("abcdefgh"))[g], "x": rng.binomial(1, 0.5, 300)})
    data["region"] = np.where(data["g"] < "e", "n", "s")
    laplace = LaplaceEngine().fit(prepare(Survey(data, "y"), None, "y ~ x + (1|g)")[0])
    return laplace, bootstrap(laplace, nsim=20, seed=1, progress=False)


def test_bootstrap_intervals_by_a_grouping_factor_are_flagged_with_the_better_method(fits):
    laplace, boot = fits
    (note,) = interval_notes(boot, ["g"])
    assert "under-cover" in note and "use.u = TRUE" in note and "--engine inla" in note
    assert interval_notes(laplace, ["g"]) == []      # the normal approximation carries the group's uncertainty
    assert interval_notes(boot, []) == [] and interval_notes(boot, ["x"]) == []  # x is a fixed effect


def test_estimates_by_a_column_outside_the_model_are_flagged(fits):
    laplace, _ = fits
    (note,) = interval_notes(laplace, ["region"])
    assert "no term for region" in note and "(1|region)" in note


def test_estimates_by_a_column_that_holds_a_grouping_term_get_the_nested_note(fits):
    laplace, _ = fits
    data = pd.DataFrame({"g": list("abcdefgh"), "region": list("nnnnssss"), "other": list("xyxyxyxy")})
    (note,) = interval_notes(laplace, ["region"], data)
    assert "no term of its own for region, but g is nested in it" in note and "(1|region)" in note
    assert "differ only through the frame" not in note
    mixed = pd.concat([data, data.assign(other=list("yxyxyxyx"))])  # each g in both values of other
    (note,) = interval_notes(laplace, ["other"], mixed)
    assert "no term for other" in note  # g does not lie within other: the plain note


def test_fit_and_poststratify_print_the_note(tmp_path, capsys):
    data = pd.DataFrame({"y": [1, 0, 1, 1, 0, 0, 1, 0] * 6, "g": list("aabbccdd") * 6})
    data.to_csv(tmp_path / "s.csv", index=False)
    pd.DataFrame({"g": list("abcd"), "n": [10, 20, 30, 40]}).to_csv(tmp_path / "f.csv", index=False)
    common = ["--frame", str(tmp_path / "f.csv"), "--count", "n", "--by", "g", "--no-progress"]
    assert main(["fit", "--survey", str(tmp_path / "s.csv"), "--formula", "y ~ (1|g)", "--bootstrap", "20",
                 "--seed", "1", "--save-fit", str(tmp_path / "m.fit"), *common]) == 0
    assert "bootstrap's intervals by g under-cover" in capsys.readouterr().err
    assert main(["poststratify", "--fit", str(tmp_path / "m.fit"), *common]) == 0
    assert "bootstrap's intervals by g under-cover" in capsys.readouterr().err
    assert main(["fit", "--survey", str(tmp_path / "s.csv"), "--formula", "y ~ (1|g)", "--seed", "1", *common]) == 0
    assert "under-cover" not in capsys.readouterr().err


def test_laplace_intervals_by_group_are_flagged_when_singular_or_sparse():
    rng = np.random.default_rng(11)
    flat = pd.DataFrame({"y": rng.binomial(1, 0.4, 400), "g": rng.integers(0, 8, 400)})  # no group effect
    singular = LaplaceEngine().fit(prepare(Survey(flat, "y"), None, "y ~ (1|g)")[0])
    assert singular.singular_terms() == ["g"]
    (note,) = interval_notes(singular, ["g"])
    assert "singular" in note and "--engine inla" in note and "--engine bayes" in note
    assert interval_notes(singular, []) == []  # the overall interval covered in every study
    g = np.repeat(np.arange(150), rng.integers(1, 6, 150))  # 1-5 respondents per group
    effect = rng.normal(0, 1.5, 150)
    sparse = pd.DataFrame({"y": rng.binomial(1, 1 / (1 + np.exp(-effect[g]))), "g": g})
    fit = LaplaceEngine().fit(prepare(Survey(sparse, "y"), None, "y ~ (1|g)")[0])
    assert not fit.singular_terms()
    (note,) = interval_notes(fit, ["g"])
    assert "at most 5 respondents" in note and "--engine inla" in note
