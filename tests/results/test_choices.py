"""Choice sets and turnout weighting: by hand on two cells in two areas, and a simulated election."""

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from misterp import Frame, poststratify
from misterp.errors import MisterpInputError
from misterp.results.choices import restrict_choices
from misterp.results.draws import CellDraws


@dataclass(frozen=True)
class FixedDraws:
    """Draws that are given arrays, (n_draws, n_cells[, K])."""

    values: np.ndarray

    @property
    def n_draws(self):
        return len(self.values)

    def chunks(self, size):
        for start in range(0, len(self.values), size):
            yield self.values[start:start + size]


FRAME = Frame(pd.DataFrame({"seat": ["x", "y"], "N": [100.0, 300.0]}), "N")
SETS = pd.DataFrame({"seat": ["x", "x", "x", "y", "y"], "category": ["a", "b", "c", "a", "c"]})
SHARES = np.array([[0.5, 0.3, 0.2], [0.2, 0.2, 0.6]])
TURNOUT = np.array([0.8, 0.5])


def test_two_cells_two_seats_one_party_absent_by_hand():
    """b does not stand in y: y's shares (0.2, 0, 0.6) / 0.8; voters 100 x 0.8 + 300 x 0.5 = 230."""
    other = SHARES[::-1]  # a second draw, so the draws differ
    choice = CellDraws(point=SHARES, draws=FixedDraws(np.stack([SHARES, other])), categories=("a", "b", "c"))
    turnout = CellDraws(point=TURNOUT, draws=FixedDraws(np.stack([TURNOUT, TURNOUT[::-1]])))
    restricted = restrict_choices(choice, FRAME, SETS)
    np.testing.assert_allclose(restricted.point, [[0.5, 0.3, 0.2], [0.25, 0.0, 0.75]])
    est = poststratify(restricted, FRAME, weight=turnout)
    expected = np.array([40 + 37.5, 24, 16 + 112.5]) / 230
    np.testing.assert_allclose(est.table["estimate"], expected)
    assert est.table["category"].tolist() == ["a", "b", "c"]
    np.testing.assert_allclose(est.table["turnout"], 230 / 400)
    # draw 2: x's shares (0.2, 0.2, 0.6) at turnout 0.5, y's (0.5, 0, 0.2) / 0.7 at 0.8: voters 50 + 240
    second = np.array([50 * 0.2 + 240 * 0.5 / 0.7, 50 * 0.2, 50 * 0.6 + 240 * 0.2 / 0.7]) / 290
    np.testing.assert_allclose(est.draws, np.stack([expected, second]))
    by_seat = poststratify(restricted, FRAME, by="seat", weight=turnout).table
    np.testing.assert_allclose(by_seat["estimate"], [0.5, 0.3, 0.2, 0.25, 0.0, 0.75])
    np.testing.assert_allclose(by_seat["turnout"], [0.8] * 3 + [0.5] * 3)


def test_the_delta_method_follows_the_renormalisation():
    """The restricted shares' Jacobian is the derivative of m p / sum m p: checked by differences."""
    rng = np.random.default_rng(0)
    J = rng.normal(size=(2, 3, 4))
    cells = CellDraws(point=SHARES, delta=(J, np.eye(4)), categories=("a", "b", "c"))
    restricted = restrict_choices(cells, FRAME, SETS)
    h, step = 1e-7, rng.normal(size=4)
    moved = restrict_choices(CellDraws(point=SHARES + h * J @ step, categories=("a", "b", "c")), FRAME, SETS)
    np.testing.assert_allclose((moved.point - restricted.point) / h, restricted.delta[0] @ step, atol=1e-5)


def test_bad_choice_sets_are_named():
    cells = CellDraws(point=SHARES, categories=("a", "b", "c"))
    with pytest.raises(MisterpInputError, match=r"name \['d'\], which the model's outcome never holds"):
        restrict_choices(cells, FRAME, pd.concat([SETS, pd.DataFrame({"seat": ["x"], "category": ["d"]})]))
    with pytest.raises(MisterpInputError, match=r"seat \['y'\] have no category"):
        restrict_choices(cells, FRAME, SETS[SETS["seat"] == "x"])
    with pytest.raises(MisterpInputError, match="categorical outcome"):
        restrict_choices(CellDraws(point=TURNOUT), FRAME, SETS)
