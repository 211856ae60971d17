"""The Fit contract: every engine and every family through cell_draws, poststratify, save, load and
poststratify again."""

import numpy as np
import pandas as pd
import pytest

from conftest import FIXTURES
from misterp import (Frame, GlmEngine, LaplaceEngine, Survey, bootstrap, cell_draws, load_fit, poststratify, prepare,
                     save_fit)
from misterp.model.family import BINOMIAL, GAUSSIAN, POISSON

LABELS = {"glm": "delta-method ±2sd", "laplace": "normal-approx ±2sd", "bootstrap": "bootstrap ±2sd",
          "bayes": "posterior central 95%"}
CASES = [(engine, family) for family in ("binomial", "poisson", "gaussian") for engine in LABELS]


def article_frame_with_unseen():
    return Frame(pd.DataFrame({"class": [1, 2, 3, 4, 5, 6, 7], "N": [4000, 4000, 4000, 4000, 7000, 500, 800],
                               "half": ["a", "a", "b", "b", "b", "a", "b"]}), "N")


@pytest.fixture(scope="module")
def models(article_survey, article_fit, poisson_bayes_fit, gaussian_bayes_fit):
    """Per family: the fits of every engine, the frame (with unseen levels), the unseen term and a grouping."""
    counts = pd.read_csv(FIXTURES / "poisson_survey.csv")
    count_frame = Frame(pd.read_csv(FIXTURES / "poisson_frame.csv"), "N")
    scores = pd.read_csv(FIXTURES / "gaussian_survey.csv")
    score_frame = Frame(pd.read_csv(FIXTURES / "gaussian_frame.csv"), "N")
    specs = {
        "binomial": (Survey(article_survey, "response"), article_frame_with_unseen(), BINOMIAL,
                     "response ~ factor(class)", "response ~ (1|class)", "half", article_fit),
        "poisson": (Survey(counts, "visits"), count_frame, POISSON, "visits ~ male + factor(age) + offset(log(years))",
                    "visits ~ male + (1|state) + (1|age) + offset(log(years))", "age", poisson_bayes_fit[0]),
        "gaussian": (Survey(scores, "score"), score_frame, GAUSSIAN, "score ~ male + factor(age)",
                     "score ~ male + (1|state) + (1|age)", "age", gaussian_bayes_fit[0]),
    }
    out = {}
    for family, (survey, frame, fam, glm_formula, mixed_formula, by, bayes) in specs.items():
        glm_frame = Frame(frame.data.iloc[:5], "N") if family == "binomial" else frame
        mixed = prepare(survey, frame, mixed_formula, family=fam)[0]
        laplace = LaplaceEngine().fit(mixed)
        fits = {"glm": GlmEngine().fit(prepare(survey, glm_frame, glm_formula, family=fam)[0]), "laplace": laplace,
                "bootstrap": bootstrap(laplace, nsim=60, seed=3, progress=False), "bayes": bayes}
        out[family] = {"fits": fits, "frame": frame, "glm_frame": glm_frame, "by": by}
    return out


def case(models, engine, family):
    spec = models[family]
    return spec["fits"][engine], spec["glm_frame"] if engine == "glm" else spec["frame"], spec["by"]


def all_draws(draws):
    return next(draws.draws.chunks(10_000))


def population_level(fit, rows: pd.DataFrame) -> np.ndarray:
    """Cell means with b = 0 for every level the survey never saw, built from the design's parts."""
    design = fit.design
    eta = design.offset(rows) + design.fixed_matrix(rows) @ fit.point_coef()[:len(design.fixed_names)]
    b = fit.point_coef()[len(design.fixed_names):]
    starts = np.concatenate([[0], np.cumsum(design.n_levels)])
    for k, codes in enumerate(design.group_index(rows)):
        eta = eta + np.where(codes >= 0, b[starts[k] + np.maximum(codes, 0)], 0.0)
    return fit.family.mean(eta)


@pytest.mark.parametrize("engine, family", CASES)
def test_shapes_labels_and_unseen_levels(models, engine, family):
    fit, frame, by = case(models, engine, family)
    draws = cell_draws(fit, frame, seed=7)
    n_cells = len(frame.data)
    n_draws = {"laplace": 1000, "bootstrap": 60, "bayes": 4000}.get(engine)
    assert draws.point.shape == (n_cells,)
    if engine == "glm":
        assert draws.draws is None and draws.delta[0].shape == (n_cells, len(fit.beta))
        assert all_draws(cell_draws(fit, frame, n_draws=200, seed=7)).shape == (200, n_cells)
    else:
        assert all_draws(draws).shape == (n_draws, n_cells)
    est = poststratify(draws, frame, by=by)
    assert est.table["interval"].unique().tolist() == [LABELS[engine]]
    assert (est.draws is None) == (engine == "glm")
    if engine == "glm":
        assert draws.unseen == {}
        return
    term, levels = next(iter(draws.unseen.items()))
    assert (term, levels) == (("class", ["6", "7"]) if family == "binomial" else ("state", ["S23", "S24", "S25"]))
    unseen = np.flatnonzero(~frame.data[term].astype(str).isin(fit.cells.table[term].astype(str)))
    # two unseen cells alike in everything but the unseen level, and a seen cell like them
    others = [c for c in frame.data.columns if c not in (term, "N", "half", "person_years")]
    key = frame.data[others].astype(str).agg("|".join, axis=1)
    first = unseen[0]
    twin = next(i for i in unseen if i != first and key[i] == key[first])
    seen = next(i for i in range(n_cells) if i not in unseen and key[i] == key[first])
    sims = all_draws(draws)
    if engine in ("laplace", "bootstrap"):  # lme4's predict(allow.new.levels = TRUE): the population level
        np.testing.assert_allclose(draws.point[unseen], population_level(fit, frame.data.iloc[unseen]), rtol=1e-12)
    if engine == "laplace":  # a new N(0, sd^2) effect per unseen level and draw
        assert not np.allclose(sims[:, first], sims[:, twin])
        link = {"binomial": lambda m: np.log(m / (1 - m)), "poisson": np.log, "gaussian": lambda m: m}[family](sims)
        sd = fit.varcorr().set_index("term")["sd"][term]
        assert link[:, first].var() > link[:, seen].var() + 0.5 * sd ** 2
    if engine == "bootstrap":  # b = 0 in every refit
        np.testing.assert_array_equal(sims[:, first], sims[:, twin])
    if engine == "bayes":  # one N(0, sigma^2) draw per term and iteration, shared; the point averages the draws
        np.testing.assert_array_equal(sims[:, first], sims[:, twin])
        np.testing.assert_allclose(draws.point, sims.mean(axis=0), rtol=1e-12)


@pytest.mark.parametrize("engine, family", CASES)
def test_save_load_and_poststratify_again_bit_for_bit(models, engine, family, tmp_path):
    fit, frame, by = case(models, engine, family)
    path = tmp_path / f"{engine}.fit"
    save_fit(fit, path)
    loaded = load_fit(path)
    assert type(loaded) is type(fit) and loaded.kind == engine and loaded.family is fit.family
    before = poststratify(cell_draws(fit, frame, seed=11), frame, by=by)
    after = poststratify(cell_draws(loaded, frame, seed=11), frame, by=by)
    pd.testing.assert_frame_equal(after.table, before.table, check_exact=True)
    if before.draws is not None:
        np.testing.assert_array_equal(after.draws, before.draws)
    assert loaded.problems() == fit.problems()
    assert loaded.design.fixed_names == fit.design.fixed_names
    assert loaded.design.group_names == fit.design.group_names


def test_a_posterior_repeats_its_predictions_without_a_seed(models):
    """The seed rule: a fit from a seeded sampler gives cell_draws its seed (sampler's + 1)."""
    fit, frame, _ = case(models, "bayes", "binomial")
    first, second = (all_draws(cell_draws(fit, frame)) for _ in range(2))
    np.testing.assert_array_equal(first, second)
    assert fit.draw_seed == fit.engine.seed + 1 and models["binomial"]["fits"]["laplace"].draw_seed is None


def test_category_columns_of_numbers_or_text_are_saved(tmp_path, article_survey, article_frame):
    data = article_survey.assign(klass=pd.Categorical(article_survey["class"]),
                                 letter=pd.Categorical(article_survey["class"].map(dict(zip(range(1, 6), "abcde")))))
    frame = Frame(article_frame.data.assign(klass=article_frame.data["class"],
                                            letter=article_frame.data["class"].map(dict(zip(range(1, 6), "abcde")))),
                  "N")
    fit = LaplaceEngine().fit(prepare(Survey(data, "response"), frame, "response ~ (1|klass) + (1|letter)")[0])
    save_fit(fit, tmp_path / "c.fit")
    loaded = load_fit(tmp_path / "c.fit")
    pd.testing.assert_frame_equal(loaded.cells.table, fit.cells.table)
    np.testing.assert_array_equal(cell_draws(loaded, frame, seed=1).point, cell_draws(fit, frame, seed=1).point)


def test_damaged_or_unwritable_files_are_named(models, tmp_path):
    from misterp import MisterpInputError

    path = tmp_path / "m.fit"
    save_fit(models["binomial"]["fits"]["laplace"], path)
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    arrays["fit.cov"] = arrays["fit.cov"][:3, :3]
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(MisterpInputError, match="is damaged"):
        load_fit(path)
    with pytest.raises(MisterpInputError, match="Cannot write the fit file"):
        save_fit(models["binomial"]["fits"]["glm"], tmp_path / "no" / "such" / "folder.fit")
