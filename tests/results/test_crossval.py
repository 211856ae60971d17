"""Model comparison by held-out data: folds, scores, rankings and PSIS-LOO."""

import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from conftest import CCES, FIXTURES, SEVEN_TERM
from misterp import GlmEngine, MisterpInputError, Survey, read_frame, read_survey
from misterp.model.family import BINOMIAL, GAUSSIAN, POISSON
from misterp.model.formula import parse_formula
from misterp.results.crossval import (
    area_folds, compare_models, kfold_folds, loo_losses, outcomes, rank_models, respondent_losses, respondents)

ARTICLE = ["response ~ 1", "response ~ factor(class)", "response ~ (1|class)"]  # complete, no, partial pooling
CASE_STUDY = ("abortion ~ (1|state) + (1|eth) + (1|educ) + male + (1|male:eth) + (1|educ:age) + (1|educ:eth) "
              "+ repvote + factor(region)")


def rows(table, scheme, score):
    return table[(table["scheme"] == scheme) & (table["score"] == score)].set_index("model")


def test_kfold_folds_keep_every_area_in_training_and_repeat():
    area = np.repeat(np.arange(6), [1, 2, 3, 7, 40, 97])
    fold = kfold_folds(area, 5, seed=3)
    assert (fold[area == 0] == -1).all() and (fold[area > 0] >= 0).all()  # a lone respondent always trains
    for k in range(5):
        assert set(area[fold != k]) == set(range(6))  # every area in every training fold
    for a in range(1, 6):  # each area split as evenly as it can be
        sizes = np.bincount(fold[area == a], minlength=5)
        assert sizes.max() - sizes.min() <= 1
    assert np.array_equal(fold, kfold_folds(area, 5, seed=3)) and not np.array_equal(fold, kfold_folds(area, 5, 4))
    held = area_folds(area, 4, seed=3)
    assert all(len(set(held[area == a])) == 1 for a in range(6))  # areas are held out whole
    assert sorted(set(held)) == [0, 1, 2, 3]
    assert sorted(set(area_folds(area, 10, seed=3))) == list(range(6))  # no more folds than areas


def test_rank_models_by_hand():
    """Means, SEs and paired differences as loo_compare computes them; units NaN for a model are left out."""
    a = np.array([0.5, 0.7, 0.2, 0.9, np.nan])
    b = np.array([0.4, 0.5, 0.3, 0.6, 0.1])
    table = rank_models({("kfold", "log_loss"): {"m1": a, "m2": b}, ("kfold", "area_mse"): {"m1": b, "m2": a}},
                        {"m1": "y ~ 1", "m2": "y ~ x"})
    first = table.iloc[:2].set_index("model")
    assert table["score"].tolist() == ["log_loss"] * 2 + ["area_mse"] * 2
    assert first.index.tolist() == ["m2", "m1"] and first["rank"].tolist() == [1, 2] and set(first["n"]) == {4}
    assert first.loc["m1", "loss"] == pytest.approx(0.575) and first.loc["m2", "loss"] == pytest.approx(0.45)
    assert first.loc["m1", "se"] == pytest.approx(np.std(a[:4], ddof=1) / 2)
    assert first.loc["m1", "diff"] == pytest.approx(0.125)
    assert first.loc["m1", "diff_se"] == pytest.approx(np.std(a[:4] - b[:4], ddof=1) / 2)
    assert first.loc["m2", "diff"] == 0 and first.loc["m2", "diff_se"] == 0
    assert table.iloc[2]["model"] == "m1" and table.iloc[2]["unit"] == "areas"  # b, on the same 4 units


def test_article_pooling_models(article_survey):
    table = compare_models(Survey(article_survey, "response"), None, ARTICLE, area="class", seed=1)
    assert list(table.columns) == ["scheme", "score", "unit", "rank", "model", "n", "loss", "se", "diff", "diff_se",
                                   "formula"]
    assert np.isfinite(table[["loss", "se", "diff", "diff_se"]].to_numpy()).all()
    for score in ("log_loss", "brier", "area_mse"):
        kfold = rows(table, "kfold", score)
        assert kfold.loc["m1", "rank"] == 3  # complete pooling is worst on every score
        assert kfold.loc["m1", "diff"] > 2 * kfold.loc["m1", "diff_se"]
        # partial pooling is never worse than the best beyond twice the paired SE
        assert kfold.loc["m3", "diff"] <= 2 * kfold.loc["m3", "diff_se"]
        assert kfold["diff"].min() == 0 and sorted(kfold["rank"]) == [1, 2, 3]
    assert rows(table, "kfold", "log_loss")["n"].tolist() == [1000] * 3
    assert rows(table, "kfold", "area_mse")["n"].tolist() == [5] * 3
    # no pooling cannot predict a class it never saw: not in the leave-areas-out rows, with a note
    assert set(rows(table, "areas", "log_loss").index) == {"m1", "m3"}
    assert any("m2 has class as a fixed effect" in note for note in table.attrs["notes"])
    # the partial-pooling model predicts an unseen class's mean better than complete pooling
    areas = rows(table, "areas", "area_mse")
    assert areas.loc["m3", "loss"] < areas.loc["m1", "loss"]


def test_complete_pooling_log_loss_by_hand(article_survey):
    """y ~ 1 predicts each held-out respondent by its training folds' mean."""
    table = compare_models(Survey(article_survey, "response"), None, ARTICLE[:1] + ARTICLE[2:], area="class",
                           seed=7, folds=4, schemes=["kfold"])
    y = article_survey["response"].to_numpy(float)
    fold = kfold_folds(pd.factorize(article_survey["class"], sort=True)[0], 4, seed=7)
    p = np.array([y[fold != k].mean() for k in range(4)])[fold]
    loss = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    row = rows(table, "kfold", "log_loss").loc["m1"]
    assert row["loss"] == pytest.approx(loss.mean(), rel=1e-10)
    assert row["se"] == pytest.approx(loss.std(ddof=1) / np.sqrt(len(y)), rel=1e-8)
    assert rows(table, "kfold", "brier").loc["m1", "loss"] == pytest.approx(((y - p) ** 2).mean(), rel=1e-10)
    # per area: each fold's held-out class mean against the prediction, averaged over folds
    cls = article_survey["class"].to_numpy()
    per_area = [np.mean([(p[(fold == k) & (cls == c)].mean() - y[(fold == k) & (cls == c)].mean()) ** 2
                         for k in range(4) if ((fold == k) & (cls == c)).any()]) for c in range(1, 6)]
    assert rows(table, "kfold", "area_mse").loc["m1", "loss"] == pytest.approx(np.mean(per_area), rel=1e-10)


def test_cells_are_expanded_into_respondents(article_survey):
    """A survey given as cells scores exactly as its respondents do, in the same order."""
    people = article_survey.sort_values(["class", "response"], ascending=[True, False], kind="stable")
    cells = people.groupby("class", as_index=False).agg(yes=("response", "sum"), n=("response", "size"))
    from_people = compare_models(Survey(people.reset_index(drop=True), "response"), None, ARTICLE, area="class")
    from_cells = compare_models(Survey(cells, "yes", trials="n"), None,
                                [f.replace("response", "yes") for f in ARTICLE], area="class")
    pd.testing.assert_frame_equal(from_people.drop(columns="formula"), from_cells.drop(columns="formula"))
    assert any("expanded 5 survey rows given as cells into 1000 respondents" in n for n in from_cells.attrs["notes"])
    cbind = respondents(Survey(cells.assign(no=cells["n"] - cells["yes"]), "yes"), ["cbind(yes, no) ~ (1|class)"],
                        "class")
    assert len(cbind.survey.data) == 1000 and cbind.survey.data["no"].isin([0, 1]).all()
    assert (cbind.survey.data["yes"] + cbind.survey.data["no"] == 1).all()


def test_true_model_ranks_first():
    """Simulated answers in which x matters and z does not: the true formula wins on log loss."""
    rng = np.random.default_rng(2024)
    n, n_states = 3000, 25
    state = rng.integers(0, n_states, n)
    x = rng.integers(0, 2, n)
    z = rng.integers(0, 20, n)  # noise
    eta = -0.3 + 1.2 * x + rng.normal(0, 0.5, n_states)[state]
    data = pd.DataFrame({"y": rng.binomial(1, 1 / (1 + np.exp(-eta))), "x": x, "z": z,
                         "state": [f"S{s:02d}" for s in state]})
    formulas = ["y ~ x + (1|state)", "y ~ (1|state)", "y ~ x + factor(z) + (1|state)"]
    table = compare_models(Survey(data, "y"), None, formulas, area="state", seed=5)
    for scheme in ("kfold", "areas"):
        ranked = rows(table, scheme, "log_loss")
        assert ranked.index[0] == "m1"
        assert ranked.loc["m2", "diff"] > 3 * ranked.loc["m2", "diff_se"]  # x matters, clearly
    assert rows(table, "kfold", "brier").index[0] == "m1"


def test_losses_are_the_families_log_densities():
    """Each respondent's log loss is minus its log density: Bernoulli, Poisson with exposure, normal."""
    rng = np.random.default_rng(1)
    data = pd.DataFrame({"y": rng.integers(0, 2, 50), "c": rng.poisson(2.0, 50), "e": rng.uniform(0.5, 3, 50),
                         "v": rng.normal(10, 2, 50), "g": rng.integers(0, 3, 50)})
    mean = rng.uniform(0.1, 0.9, 50)
    out = outcomes(Survey(data, "y"), parse_formula("y ~ (1|g)"), BINOMIAL)
    loss = respondent_losses(BINOMIAL, out, mean, 1.0)
    assert np.allclose(loss["log_loss"], -st.bernoulli.logpmf(data["y"], mean))
    assert np.allclose(loss["brier"], (data["y"] - mean) ** 2)
    out = outcomes(Survey(data, "c", exposure="e"), parse_formula("c ~ (1|g)"), POISSON)
    loss = respondent_losses(POISSON, out, 2 * mean, 1.0)
    assert np.allclose(loss["log_loss"], -st.poisson.logpmf(data["c"], 2 * mean * data["e"]))
    assert np.allclose(loss["squared_error"], (data["c"] - 2 * mean * data["e"]) ** 2)
    out = outcomes(Survey(data, "v"), parse_formula("v ~ (1|g)"), GAUSSIAN)
    loss = respondent_losses(GAUSSIAN, out, 10 * mean, 4.0)
    assert np.allclose(loss["log_loss"], -st.norm.logpdf(data["v"], 10 * mean, 2.0))


def test_gaussian_and_poisson_comparisons():
    gauss = pd.read_csv(FIXTURES / "gaussian_survey.csv")
    table = compare_models(Survey(gauss, "score"), None, ["score ~ male + (1|state) + (1|age)", "score ~ male + age"],
                           area="state", family=GAUSSIAN, folds=3, seed=1)
    assert set(table["score"]) == {"log_loss", "squared_error", "area_mse"}
    assert np.isfinite(table["loss"]).all() and (table["loss"] > 0).all()
    counts = pd.read_csv(FIXTURES / "poisson_survey.csv")
    table = compare_models(Survey(counts, "visits"), None,
                           ["visits ~ male + (1|state) + (1|age) + offset(log(years))",
                            "visits ~ (1|state) + offset(log(years))"], area="state", family=POISSON, folds=3, seed=1,
                           schemes=["kfold"])
    ranked = rows(table, "kfold", "log_loss")
    assert ranked.index[0] == "m1" and ranked.loc["m2", "diff"] > 3 * ranked.loc["m2", "diff_se"]
    assert set(table["score"]) == {"log_loss", "squared_error", "area_mse"}


def test_mistakes_are_named(article_survey):
    survey = Survey(article_survey, "response")
    with pytest.raises(MisterpInputError, match="area column 'state' is not in the survey"):
        compare_models(survey, None, ARTICLE, area="state")
    with pytest.raises(MisterpInputError, match="same left-hand side"):
        compare_models(survey.__class__(article_survey.assign(r2=1 - article_survey["response"]), "response"), None,
                       ["response ~ (1|class)", "r2 ~ (1|class)"], area="class")
    with pytest.raises(MisterpInputError, match="PSIS-LOO needs posterior draws"):
        compare_models(survey, None, ARTICLE, area="class", schemes=["loo"])
    with pytest.raises(MisterpInputError, match="Unknown scheme"):
        compare_models(survey, None, ARTICLE, area="class", schemes=["bootstrap"])
    with pytest.raises(MisterpInputError, match="at least 2"):
        compare_models(survey, None, ARTICLE, area="class", folds=1)
    with pytest.raises(MisterpInputError, match="glm engine fits fixed effects only"):
        compare_models(survey, None, ARTICLE, area="class", engine=GlmEngine(), schemes=["kfold"])


def test_loo_without_arviz_names_the_extra(article_survey, monkeypatch):
    from misterp.engines.bayes import BayesEngine

    monkeypatch.setitem(sys.modules, "arviz", None)  # import arviz now raises ImportError
    with pytest.raises(MisterpInputError, match=r"pip install misterp\[arviz\]"):
        compare_models(Survey(article_survey, "response"), None, ARTICLE, area="class", engine=BayesEngine())


def test_loo_matches_arviz_on_every_respondent(article_survey, article_fit):
    """Respondents alike share one LOO value: the grouped computation equals ArviZ's loo on all 1,000."""
    import arviz as az

    from misterp import Frame, cell_draws

    loss, pareto = loo_losses(article_fit, Survey(article_survey, "response"))
    p = np.vstack(list(cell_draws(article_fit, Frame(article_survey.assign(N=1.0), "N")).draws.chunks(1000)))
    y = article_survey["response"].to_numpy()
    loglik = np.where(y == 1, np.log(p), np.log1p(-p))  # (4,000 draws, 1,000 respondents)
    chains = article_fit.engine.chains
    ref = az.loo(az.from_dict(posterior=dict(article_fit.samples),
                              log_likelihood={"y": loglik.reshape(chains, -1, len(y))}), pointwise=True)
    assert np.allclose(-loss, ref.loo_i.values, atol=1e-10) and np.allclose(pareto, ref.pareto_k.values)
    assert loss.sum() == pytest.approx(-ref.elpd_loo, rel=1e-12)


@pytest.mark.slow  # two JAX compilations, about 10 s
@pytest.mark.filterwarnings("ignore::misterp.MisterpWarning")
def test_bayes_engine_compares_by_loo(article_survey):
    from misterp.engines.bayes import BayesEngine

    engine = BayesEngine(chains=2, warmup=150, draws=150, seed=3, progress=False)
    table = compare_models(Survey(article_survey, "response"), None, ["response ~ 1", "response ~ (1|class)"],
                           area="class", engine=engine)
    assert set(table["scheme"]) == {"loo"} and set(table["score"]) == {"log_loss"}
    ranked = rows(table, "loo", "log_loss")
    assert ranked.index[0] == "m2" and ranked.loc["m1", "diff"] > 2 * ranked.loc["m1", "diff_se"]
    assert ranked["n"].tolist() == [1000, 1000]
    assert any("Kuh et al. 2023" in note for note in table.attrs["notes"])


def test_cces_seven_term_against_the_case_study(cces_all):
    """5,000 CCES respondents: state-level predictors (repvote, region) help predict unseen states."""
    sample = cces_all.sample(5000, random_state=1).reset_index(drop=True)
    statelevel = pd.read_csv(CCES / "statelevel_predictors.csv")
    survey = read_survey(sample, "abortion", join=[statelevel])
    frame = read_frame(CCES / "poststrat_df.csv", "n", join=[statelevel])
    table = compare_models(survey, frame, [SEVEN_TERM, CASE_STUDY], area="state", seed=1)
    assert np.isfinite(table[["loss", "se", "diff", "diff_se"]].to_numpy()).all()
    assert set(rows(table, "areas", "area_mse")["n"]) == {50} and set(rows(table, "kfold", "log_loss")["n"]) == {5000}
    areas = rows(table, "areas", "area_mse")
    assert areas.index[0] == "m2" and areas.loc["m1", "diff"] > areas.loc["m1", "diff_se"]
    assert rows(table, "areas", "log_loss").index[0] == "m2"


def test_structured_terms_keep_their_neighbours_when_an_area_is_held_out():
    """Held-out areas of a smooth spatial effect: icar predicts them from their neighbours, (1|area) at the
    mean, so icar scores better on the areas scheme."""
    from misterp.data.adjacency import adjacency_from_table

    rng = np.random.default_rng(5)
    areas = [f"a{k:02d}" for k in range(16)]
    area = rng.integers(0, 16, 1600)
    eta = 1.2 * np.sin(2 * np.pi * area / 16)
    data = pd.DataFrame({"y": (rng.random(1600) < 1 / (1 + np.exp(-eta))).astype(int),
                         "area": [areas[a] for a in area]})
    ring = adjacency_from_table(pd.DataFrame({"area": areas, "neighbour": areas[1:] + areas[:1]}), "ring")
    table = compare_models(Survey(data, "y"), None, ["y ~ (1|area)", "y ~ icar(area)"], area="area", folds=4,
                           schemes=["areas"], adjacency=ring)
    log_loss = table[(table["score"] == "log_loss")].set_index("model")["loss"]
    assert log_loss["m2"] < log_loss["m1"] - 0.01


def test_a_categorical_outcome_is_scored_by_the_multinomial_log_loss():
    """Each held-out respondent's loss is -log of the predicted share of the answer given, the Brier score the
    squared distance of the shares from the answer's indicator; the richer Chile model scores better."""
    from misterp.model.family import CATEGORICAL
    from misterp.results.crossval import compare_models, outcomes, respondent_losses

    data = pd.read_csv(FIXTURES / "chile_survey.csv")
    family = CATEGORICAL.bind(data["vote"])
    out = outcomes(Survey(data.iloc[:3], "vote"), parse_formula("vote ~ sex"), family)
    mean = np.array([[0.1, 0.2, 0.3, 0.4]] * 3)
    losses = respondent_losses(family, out, mean, 1.0)
    answered = [family.categories.index(v) for v in data["vote"].iloc[:3]]
    np.testing.assert_allclose(losses["log_loss"], -np.log(mean[0, answered]))
    np.testing.assert_allclose(losses["brier"], ((np.eye(4)[answered] - mean) ** 2).sum(axis=1))
    table = compare_models(Survey(data, "vote"), None, ["vote ~ (1|region)", "vote ~ sex + education + (1|region)"],
                           area="region", family="categorical", schemes=["kfold"], folds=3)
    best = table[(table["score"] == "log_loss")].sort_values("rank")
    assert best["model"].tolist() == ["m2", "m1"] and best["loss"].between(1.0, 1.4).all()
