"""The article's simulation, with R's random streams so its numbers come out exactly.

A university of 4000 freshmen, sophomores, juniors and seniors and 7000
graduate students; true support 0.65, 0.65, 0.4, 0.4, 0.2; a representative
sample of 1000 and a non-response sample of 1000 with response probabilities
0.4, 0.4, 0.2, 0.1, 0.1.

Example
-------
>>> sim = article_simulation()
>>> sim.nonresponse_table.tolist()
[341, 326, 148, 95, 90]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .frame import Frame
from .rcompat import RRandom

CLASSES = np.arange(1, 6)
POPULATION = np.array([4000, 4000, 4000, 4000, 7000])
P_SUPPORT = np.array([0.65, 0.65, 0.4, 0.4, 0.2])
P_RESPONSE = np.array([0.4, 0.4, 0.2, 0.1, 0.1])


@dataclass(frozen=True)
class ArticleSimulation:
    """The article's simulated data.

    Attributes
    ----------
    truth : float
        Population support, sum(p N) / sum(N).
    representative_table, nonresponse_table : (5,) int arrays
        Respondents per class in each sample.
    representative_mean : float
        Mean response of the representative sample.
    survey : DataFrame
        The non-response survey: ``response`` (0/1) and ``class`` (1-5), 1000 rows.
    frame : Frame
        The five classes with their population counts ``N``.
    """

    truth: float
    representative_table: np.ndarray
    representative_mean: float
    nonresponse_table: np.ndarray
    survey: pd.DataFrame
    frame: Frame


def article_simulation(seeds=(10, 20, 30), n: int = 1000) -> ArticleSimulation:
    """Run the article's simulation with its three ``set.seed`` values."""
    seed_rep, seed_people, seed_response = seeds
    rng = RRandom(seed_rep)
    people = rng.sample(CLASSES, n, replace=True, prob=POPULATION)
    ideal = rng.rbinom(n, 1, P_SUPPORT[people - 1])
    representative = np.bincount(people, minlength=6)[1:]
    people = RRandom(seed_people).sample(CLASSES, n, replace=True, prob=P_RESPONSE)
    response = RRandom(seed_response).rbinom(n, 1, P_SUPPORT[people - 1]).astype(int)
    return ArticleSimulation(
        truth=float((P_SUPPORT * POPULATION).sum() / POPULATION.sum()),
        representative_table=representative,
        representative_mean=float(ideal.mean()),
        nonresponse_table=np.bincount(people, minlength=6)[1:],
        survey=pd.DataFrame({"response": response, "class": people}),
        frame=Frame(pd.DataFrame({"class": CLASSES, "N": POPULATION}), "N"),
    )
