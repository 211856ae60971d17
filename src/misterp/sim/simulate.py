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

from ..data.frame import Frame
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


# The rstanarm MRP vignette's design (Kennedy & Gabry, "MRP with rstanarm").
VIGNETTE = {
    "male": ([0.52, 0.48], [2.0, 0.8], [0.0, -0.3]),
    "eth": ([0.5, 0.2, 0.3], [1.0, 1.2, 2.5], [0.0, 0.6, 0.9]),
    "age": ([0.2, 0.1, 0.2, 0.2, 0.1, 0.1, 0.1], [1.0, 0.4, 1.0, 1.5, 3.0, 5.0, 7.0],
            [0.0, -0.2, -0.3, 0.4, 0.5, 0.7, 0.8]),
    "income": ([0.5, 0.35, 0.15], [1.0, 0.9, 0.8], [0.0, -0.2, 0.6]),
}
AGE_BY_MALE = np.array([[0.0, 0.1, 0.23, 0.3, 0.43, 0.5, 0.6],
                        [0.0, -0.1, -0.23, -0.5, -0.43, -0.5, -0.6]])
VIGNETTE_FORMULA = ("pref ~ factor(male) + factor(male)*factor(age) + (1|state) + (1|age) + (1|eth) "
                    "+ (1|income)")


@dataclass(frozen=True)
class VignetteSimulation:
    """A seeded draw of the vignette's population and survey.

    Attributes
    ----------
    survey : DataFrame
        ``pref`` (0/1), male, eth, age, income, state and ``weight`` (inverse
        selection probability, normalised to mean 1), n rows.
    frame : Frame
        The 6,300 cells with counts ``N`` and the true preference ``truth``.
    """

    survey: pd.DataFrame
    frame: Frame


def vignette_simulation(seed: int = 1, n: int = 1200) -> VignetteSimulation:
    """The vignette's 6,300-cell population with a known truth, and a biased sample of ``n``."""
    rng = np.random.default_rng(seed)
    population = vignette_population(rng)
    return VignetteSimulation(vignette_sample(population, n, rng), population.frame)


@dataclass(frozen=True)
class VignettePopulation:
    """The vignette's population: ``frame`` (6,300 cells with ``N`` and ``truth``) and each
    cell's response propensity ``response`` (6,300,), which biases the samples."""

    frame: Frame
    response: np.ndarray


def vignette_population(rng: np.random.Generator) -> VignettePopulation:
    """Draw the vignette's states (their sizes, response rates and effects) from ``rng``."""
    n_states = 50
    state_share = rng.uniform(10, 20, n_states)
    state_share /= state_share.sum()
    state_response = rng.beta(1, 1, n_states)
    state_effect = np.concatenate([[0.0], np.round(rng.standard_normal(n_states - 1), 1)])
    grids = np.meshgrid(np.arange(2), np.arange(3), np.arange(7), np.arange(3), np.arange(n_states), indexing="ij")
    male, eth, age, income, state = (g.ravel() for g in grids)
    shares = {k: np.asarray(v[0]) for k, v in VIGNETTE.items()}
    counts = np.round(250e6 * shares["male"][male] * shares["eth"][eth] * shares["age"][age]
                      * shares["income"][income] * state_share[state])
    response = 0.01 * np.prod([np.asarray(VIGNETTE[k][1])[idx] / np.sum(VIGNETTE[k][1])
                               for k, idx in (("male", male), ("eth", eth), ("age", age), ("income", income))], axis=0)
    response = response * state_response[state] / state_response.sum()
    linear = (np.asarray(VIGNETTE["male"][2])[male] + np.asarray(VIGNETTE["eth"][2])[eth]
              + np.asarray(VIGNETTE["age"][2])[age] + np.asarray(VIGNETTE["income"][2])[income]
              + state_effect[state] + AGE_BY_MALE[male, age])
    truth = 1 / (1 + np.exp(-linear))
    cells = pd.DataFrame({"male": male, "eth": eth + 1, "age": age + 1, "income": income + 1,
                          "state": state + 1, "N": counts, "truth": truth})
    return VignettePopulation(Frame(cells, "N"), response)


def vignette_sample(population: VignettePopulation, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """A biased sample of ``n`` from ``population``: cells chosen by count x response propensity.

    Returns ``pref`` (0/1), male, eth, age, income, state and ``weight`` (inverse
    selection probability, normalised to mean 1), n rows.
    """
    cells, response = population.frame.data, population.response
    selection = cells["N"].to_numpy() * response
    chosen = rng.choice(len(cells), size=n, replace=True, p=selection / selection.sum())
    survey = cells.iloc[chosen].drop(columns=["N", "truth"]).reset_index(drop=True)
    survey.insert(0, "pref", rng.binomial(1, cells["truth"].to_numpy()[chosen]))
    weight = 1 / response[chosen]
    survey["weight"] = weight / weight.mean()
    return survey


@dataclass(frozen=True)
class PanelSimulation:
    """A tracking poll with a known trend.

    Attributes
    ----------
    survey : DataFrame
        ``support`` (0/1), ``wave`` (1..n_waves), ``state`` (12 regions), ``male`` (0/1); the waves in
        ``skipped`` have no respondents.
    frame : Frame
        Every wave x state x male cell, with counts ``N`` (the population shifts between waves) and the
        true support ``truth``.
    trend : DataFrame
        ``wave`` and the population's true support in it, ``truth``.
    skipped : tuple of int
        Waves the poll missed; the frame has them.
    """

    survey: pd.DataFrame
    frame: Frame
    trend: pd.DataFrame
    skipped: tuple


def panel_simulation(seed: int = 1, n_waves: int = 24, per_wave: int = 120, skipped=(9, 17)) -> PanelSimulation:
    """A smooth national trend (-0.3 + 0.5 sin(2π t / 16) + 0.3 t / n_waves on the logit scale), 12 regions
    with effects N(0, 0.35²), men 0.25 lower, and ``per_wave`` respondents a wave (men and the first regions
    over-sampled), none in the ``skipped`` waves."""
    rng = np.random.default_rng(seed)
    waves = np.arange(1, n_waves + 1)
    states = np.array([f"R{k:02d}" for k in range(1, 13)])
    trend = -0.3 + 0.5 * np.sin(2 * np.pi * waves / 16) + 0.3 * waves / n_waves
    region = rng.normal(0, 0.35, len(states))
    size = rng.uniform(0.5, 2.0, len(states))
    w, s, m = (a.ravel() for a in np.meshgrid(waves, np.arange(len(states)), [0, 1], indexing="ij"))
    eta = trend[w - 1] + region[s] - 0.25 * m
    truth = 1 / (1 + np.exp(-eta))
    counts = np.round(1e5 * size[s] * (1 + 0.01 * (w - 1) * (m - 0.5))).astype(float)
    frame = pd.DataFrame({"wave": w, "state": states[s], "male": m, "N": counts, "truth": truth})
    # each wave's sample: men twice as likely to answer, the first regions over-sampled
    reach = counts * (1 + m) * np.linspace(2.0, 0.5, len(states))[s]
    rows = []
    for t in waves:
        if t in skipped:
            continue
        cells = np.flatnonzero(w == t)
        chosen = rng.choice(cells, per_wave, p=reach[cells] / reach[cells].sum())
        rows.append(frame.iloc[chosen].assign(support=(rng.random(per_wave) < truth[chosen]).astype(int)))
    survey = pd.concat(rows, ignore_index=True)[["support", "wave", "state", "male"]]
    population = (frame["truth"] * frame["N"]).groupby(frame["wave"]).sum() / frame["N"].groupby(frame["wave"]).sum()
    return PanelSimulation(survey, Frame(frame, "N"), pd.DataFrame({"wave": waves, "truth": population.to_numpy()}),
                           tuple(skipped))


@dataclass(frozen=True)
class ElectionSimulation:
    """A simulated election poll with known turnout and party shares per seat.

    Attributes
    ----------
    survey : DataFrame
        One row per respondent: ``voted`` (0/1), ``vote`` (the party; missing for those who did not vote),
        ``seat``, ``age``, ``male``.
    frame : Frame
        Every seat x age x male cell, counts ``N`` (no truth columns).
    choices : DataFrame
        The parties standing in each seat (``seat``, ``category``): party C stands only in the first half.
    truth : DataFrame
        Per seat and party (``seat``, ``category``): ``share`` = sum N t p / sum N t, and the seat's ``turnout``.
    """

    survey: pd.DataFrame
    frame: Frame
    choices: pd.DataFrame
    truth: pd.DataFrame


def election_simulation(seed: int = 1, n: int = 5000, n_seats: int = 20) -> ElectionSimulation:
    """Turnout logit(t) = -0.4 + 0.35 age + 0.2 male + seat effect N(0, 0.3²); party choice among voters a
    multinomial logit over A, B, C (A the baseline) with B: 0.2 - 0.25 age + 0.3 male + seat N(0, 0.5²) and
    C: -0.5 + 0.15 age + seat N(0, 0.4²), renormalised over the seat's parties; ``n`` respondents drawn with
    the young and women under-sampled."""
    rng = np.random.default_rng(seed)
    seats = np.array([f"S{k:02d}" for k in range(1, n_seats + 1)])
    ages = np.array(["18-34", "35-54", "55+"])
    s, a, m = (x.ravel() for x in np.meshgrid(np.arange(n_seats), np.arange(3), [0, 1], indexing="ij"))
    counts = np.round(rng.uniform(2e3, 8e3, len(s))).astype(float)
    turnout = 1 / (1 + np.exp(-(-0.4 + 0.35 * a + 0.2 * m + rng.normal(0, 0.3, n_seats)[s])))
    eta_b = 0.2 - 0.25 * a + 0.3 * m + rng.normal(0, 0.5, n_seats)[s]
    eta_c = -0.5 + 0.15 * a + rng.normal(0, 0.4, n_seats)[s]
    stands_c = s < n_seats // 2
    weights = np.stack([np.ones(len(s)), np.exp(eta_b), np.exp(eta_c) * stands_c], axis=1)
    shares = weights / weights.sum(axis=1, keepdims=True)
    frame = pd.DataFrame({"seat": seats[s], "age": ages[a], "male": m, "N": counts})
    reach = counts * np.array([0.4, 1.0, 1.3])[a] * (1 + 0.5 * m)
    chosen = rng.choice(len(s), n, p=reach / reach.sum())
    voted = rng.random(n) < turnout[chosen]
    parties = np.array(["A", "B", "C"])
    picks = np.array([rng.choice(3, p=shares[c]) for c in chosen])
    survey = frame.iloc[chosen][["seat", "age", "male"]].reset_index(drop=True).assign(
        voted=voted.astype(int), vote=np.where(voted, parties[picks], None))
    choices = pd.DataFrame([(seats[k], p) for k in range(n_seats) for p in (("A", "B", "C") if k < n_seats // 2
                                                                            else ("A", "B"))],
                           columns=["seat", "category"])
    voters = counts * turnout
    rows = []
    for k in range(n_seats):
        here = s == k
        share = (voters[here, None] * shares[here]).sum(axis=0) / voters[here].sum()
        rows += [(seats[k], p, share[j], voters[here].sum() / counts[here].sum()) for j, p in enumerate(parties)]
    truth = pd.DataFrame(rows, columns=["seat", "category", "share", "turnout"])
    return ElectionSimulation(survey[["voted", "vote", "seat", "age", "male"]], Frame(frame, "N"), choices, truth)
