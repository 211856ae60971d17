"""The Fit contract: every engine through cell_draws, poststratify, save, load and poststratify again."""

import numpy as np
import pandas as pd
import pytest

from misterp import (Frame, GlmEngine, LaplaceEngine, Survey, bootstrap, cell_draws, load_fit, poststratify,
                     prepare, save_fit)

LABELS = {"glm": "delta-method ±2sd", "laplace": "normal-approx ±2sd", "bootstrap": "bootstrap ±2sd",
          "bayes": "posterior central 95%"}
N_DRAWS = {"glm": None, "laplace": 1000, "bootstrap": 60, "bayes": 4000}


@pytest.fixture(scope="module")
def fits(article_survey, article_frame, article_fit):
    survey = Survey(article_survey, "response")
    laplace = LaplaceEngine().fit(prepare(survey, article_frame, "response ~ (1|class)")[0])
    return {"glm": GlmEngine().fit(prepare(survey, article_frame, "response ~ factor(class)")[0]),
            "laplace": laplace,
            "bootstrap": bootstrap(laplace, nsim=60, seed=3, progress=False),
            "bayes": article_fit}


def frame_for(engine):
    """The article's classes, and for multilevel engines two classes the survey never saw."""
    classes = [1, 2, 3, 4, 5] if engine == "glm" else [1, 2, 3, 4, 5, 6, 7]
    return Frame(pd.DataFrame({"class": classes, "N": [4000, 4000, 4000, 4000, 7000, 500, 800][:len(classes)],
                               "half": ["a", "a", "b", "b", "b", "a", "b"][:len(classes)]}), "N")


def all_draws(draws):
    return next(draws.draws.chunks(10_000))


@pytest.mark.parametrize("engine", list(LABELS))
def test_shapes_labels_and_unseen_levels(fits, engine):
    fit, frame = fits[engine], frame_for(engine)
    draws = cell_draws(fit, frame, seed=7)
    n_cells = len(frame.data)
    assert draws.point.shape == (n_cells,)
    if N_DRAWS[engine] is None:
        assert draws.draws is None and draws.delta[0].shape == (n_cells, 5)
        assert all_draws(cell_draws(fit, frame, n_draws=200, seed=7)).shape == (200, n_cells)
    else:
        assert all_draws(draws).shape == (N_DRAWS[engine], n_cells)
    est = poststratify(draws, frame, by="half")
    assert est.table["interval"].unique().tolist() == [LABELS[engine]]
    assert est.table.shape[0] == 2 and (est.draws is None) == (N_DRAWS[engine] is None)
    if engine == "glm":
        assert draws.unseen == {}
        return
    assert draws.unseen == {"class": ["6", "7"]}
    sims = all_draws(draws)
    if engine in ("laplace", "bootstrap"):
        # lme4's predict(allow.new.levels = TRUE): the population-level prediction
        intercept = fit.point_coef()[0]
        np.testing.assert_allclose(draws.point[5:], 1 / (1 + np.exp(-intercept)), rtol=1e-12)
    if engine == "laplace":  # a new N(0, sd^2) effect per unseen level and draw
        assert not np.allclose(sims[:, 5], sims[:, 6])
        logit = np.log(sims[:, 5] / (1 - sims[:, 5]))
        assert logit.std() == pytest.approx(np.sqrt(fit.vcov().iloc[0, 0] + fit.theta[0] ** 2), rel=0.1)
    if engine == "bootstrap":  # b = 0 in every refit
        np.testing.assert_allclose(sims[:, 5], 1 / (1 + np.exp(-fit.parameter_draws(None, None).coef[:, 0])))
        np.testing.assert_array_equal(sims[:, 5], sims[:, 6])
    if engine == "bayes":  # one N(0, sigma^2) draw per term and iteration, shared; the point averages the draws
        np.testing.assert_array_equal(sims[:, 5], sims[:, 6])
        np.testing.assert_allclose(draws.point, sims.mean(axis=0), rtol=1e-12)


@pytest.mark.parametrize("engine", list(LABELS))
def test_save_load_and_poststratify_again_bit_for_bit(fits, engine, tmp_path):
    fit, frame = fits[engine], frame_for(engine)
    path = tmp_path / f"{engine}.fit"
    save_fit(fit, path)
    loaded = load_fit(path)
    assert type(loaded) is type(fit) and loaded.kind == engine
    before = poststratify(cell_draws(fit, frame, seed=11), frame, by="half")
    after = poststratify(cell_draws(loaded, frame, seed=11), frame, by="half")
    pd.testing.assert_frame_equal(after.table, before.table, check_exact=True)
    if before.draws is not None:
        np.testing.assert_array_equal(after.draws, before.draws)
    assert loaded.problems() == fit.problems()
    assert loaded.design.fixed_names == fit.design.fixed_names
    assert loaded.design.group_names == fit.design.group_names


def test_a_posterior_repeats_its_predictions_without_a_seed(fits):
    """The seed rule: a fit from a seeded sampler gives cell_draws its seed (sampler's + 1)."""
    frame = frame_for("bayes")
    first, second = (all_draws(cell_draws(fits["bayes"], frame)) for _ in range(2))
    np.testing.assert_array_equal(first, second)
    assert fits["bayes"].draw_seed == fits["bayes"].engine.seed + 1 and fits["laplace"].draw_seed is None


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


def test_damaged_or_unwritable_files_are_named(fits, tmp_path):
    from misterp import MisterpInputError

    path = tmp_path / "m.fit"
    save_fit(fits["laplace"], path)
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    arrays["fit.cov"] = arrays["fit.cov"][:3, :3]
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(MisterpInputError, match="is damaged"):
        load_fit(path)
    with pytest.raises(MisterpInputError, match="Cannot write the fit file"):
        save_fit(fits["glm"], tmp_path / "no" / "such" / "folder.fit")
