"""Estimate: the tidy result of poststratification, with its draws."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Estimate:
    """Poststratified estimates, one row per group.

    Attributes
    ----------
    table : DataFrame
        The group columns, then ``estimate``, ``sd``, ``lower``, ``upper``,
        ``population`` and ``interval`` (the method behind lower/upper).
    by : list of str
        The group columns (empty for the overall estimate).
    draws : (n_draws, n_groups) array, optional
        Draws of every group's estimate, aligned across groups, so a contrast
        such as group A - group B is one subtraction.
    unseen : dict
        Grouping term -> frame levels the survey never saw (predicted at the
        population level).
    """

    table: pd.DataFrame
    by: list
    draws: np.ndarray | None = None
    unseen: dict = field(default_factory=dict)

    @property
    def value(self) -> float:
        """The single estimate of an overall Estimate."""
        if len(self.table) != 1:
            raise ValueError("this Estimate has several groups; read .table")
        return float(self.table["estimate"].iloc[0])

    def plot(self, ax=None, comparisons: bool = True):
        """The estimates sorted, with their intervals (and the comparison estimates when the table
        has them); returns the matplotlib Figure (see :func:`misterp.report.plots.estimates_plot`)."""
        from ..report.plots import estimates_plot  # the one upward import the layers contract allows

        return estimates_plot(self, ax=ax, comparisons=comparisons)

    def __repr__(self) -> str:
        return f"Estimate(by={self.by})\n{self.table.to_string(index=False)}"
