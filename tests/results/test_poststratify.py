import numpy as np
import pandas as pd
import pytest

from misterp import CellDraws, Frame, Survey, poststratify, prepare
from misterp.model.cells import cell_proportions
from misterp.results.draws import LinearDraws


def test_simple_poststratification_matches_r(article_survey, article_frame, ref):
    cells, _ = prepare(Survey(article_survey, "response"), article_frame, "response ~ factor(class)")
    props = cell_proportions(cells, article_frame)
    np.testing.assert_allclose(props, ref["cell_proportions"], rtol=0, atol=1e-9)
    est = poststratify(CellDraws(point=props), article_frame)
    assert abs(est.value - ref["simple_poststrat"][0]) < 1e-9


def test_by_groups_and_empty_population():
    frame = Frame(pd.DataFrame({"s": ["a", "a", "b", "c"], "N": [1.0, 3.0, 2.0, 0.0]}), "N")
    est = poststratify(CellDraws(point=np.array([0.2, 0.6, 0.5, 0.9])), frame, by="s")
    t = est.table.set_index("s")
    assert t.loc["a", "estimate"] == pytest.approx(0.5)
    assert t.loc["b", "estimate"] == pytest.approx(0.5)
    assert t.loc["c", "population"] == 0 and np.isnan(t.loc["c", "estimate"])
    assert list(est.table.columns) == ["s", "estimate", "sd", "lower", "upper", "population", "interval"]


def test_chunked_draws_equal_unchunked():
    rng = np.random.default_rng(0)
    frame = Frame(pd.DataFrame({"g": np.repeat(["a", "b", "c"], 20), "k": np.tile(np.arange(20), 3),
                                "N": rng.integers(0, 50, 60)}), "N")
    draws = LinearDraws(rng.normal(size=(300, 4)), rng.normal(size=(60, 4)), np.zeros(60))
    cells = CellDraws(point=rng.uniform(size=60), draws=draws, method="test")
    small = poststratify(cells, frame, by="g", chunk_size=7)
    whole = poststratify(cells, frame, by="g", chunk_size=10_000)
    np.testing.assert_allclose(small.draws, whole.draws, rtol=1e-13)
    np.testing.assert_allclose(small.table["sd"], whole.table["sd"], rtol=1e-12)
    direct = (np.asarray([p for p in draws.chunks(300)][0]) @ (frame.counts * (frame.data["g"] == "a")))
    np.testing.assert_allclose(small.draws[:, 0], direct / frame.counts[frame.data["g"] == "a"].sum())


def test_posterior_sized_draws_stay_chunked(cces_frame):
    """4,000 draws x 12,000 cells by state and by eth: several chunks, and peak memory far below
    the 384 MB that draws x cells x 8 bytes would take."""
    import tracemalloc

    rng = np.random.default_rng(1)
    n_cells = len(cces_frame.data)
    matrix = np.zeros((n_cells, 3))
    matrix[:, 0] = 1.0
    matrix[:, 1] = cces_frame.data["male"].to_numpy()
    matrix[:, 2] = (cces_frame.data["eth"] == "White").to_numpy()
    draws = LinearDraws(rng.normal(0, 0.3, size=(4000, 3)), matrix, np.zeros(n_cells))
    chunks = sum(1 for _ in draws.chunks(256))
    assert chunks > 1
    cells = CellDraws(point=np.full(n_cells, 0.5), draws=draws, method="posterior")
    tracemalloc.start()
    for by in ("state", "eth"):
        poststratify(cells, cces_frame, by=by, chunk_size=256)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 4000 * n_cells * 8 / 4
