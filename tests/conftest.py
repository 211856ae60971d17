"""Shared fixtures: the article's data and R's reference values from ../shared."""

import json
import os
from pathlib import Path

# One BLAS thread per xdist worker: `make test` runs a worker per core, and the small solves the tests do
# spend more time waking a second OpenBLAS thread than they gain (linear-algebra tests: 31 s -> 24 s of
# CPU here). Set before NumPy loads, and inherited by the processes the tests start. A single process
# (`make test-slow`, `pytest FILE`) keeps the default, as a user's run does: the thread count changes
# the last bits of a solve, and with them a seeded sampler's path.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_name, "1")

import pandas as pd  # noqa: E402
import pytest  # noqa: E402

# Most of the suite's time is XLA compiling the bayes engine's samplers (one program per test's model and
# settings), each then run for seconds at most: compile them with less optimisation (LLVM's -O1, XLA's
# older fusion; the bayes tests took 80 s -> 58 s here, with the same results at the tests' tolerances).
# Set before JAX starts, inherited by the CLI's subprocesses, and never set by misterp itself: real runs
# sample long enough to repay full optimisation. A user's own XLA_FLAGS choosing a level is kept.
QUICK_COMPILE = "--xla_backend_optimization_level=1 --xla_cpu_use_fusion_emitters=false"
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {QUICK_COMPILE}".strip()

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
FIXTURES = Path(__file__).parent / "fixtures"
CCES = SHARED / "data" / "cces"
SEVEN_TERM = ("abortion ~ male + (1|state) + (1|eth) + (1|educ) + (1|age) + (1|educ:age) "
              "+ (1|educ:eth) + (1|male:eth)")


def cli_run(capsys, *argv):
    """``misterp ARGV`` in process: (exit code, stdout, stderr)."""
    from misterp.apps.cli import main

    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def cli_error(capsys, *argv):
    """``misterp ARGV``'s one-paragraph error, asserting exit code 2 and no traceback."""
    code, out, err = cli_run(capsys, *argv)
    assert code == 2 and "Traceback" not in err and err.startswith("misterp: error:"), err
    return err


@pytest.fixture(scope="session")
def ref():
    return json.loads((SHARED / "reference" / "seed_article.json").read_text())


@pytest.fixture(scope="session")
def article_survey():
    return pd.read_csv(SHARED / "reference" / "seed_survey.csv")


@pytest.fixture(scope="session")
def article_frame():
    from misterp import Frame

    return Frame(pd.DataFrame({"class": [1, 2, 3, 4, 5], "N": [4000, 4000, 4000, 4000, 7000]}), "N")


@pytest.fixture(scope="session")
def cces_all():
    return pd.read_csv(CCES / "cces_all_clean.csv")


@pytest.fixture(scope="session")
def cces_frame():
    from misterp import read_frame

    return read_frame(CCES / "poststrat_df.csv", "n")


def r_scalars(tag):
    return pd.read_csv(FIXTURES / f"cces_{tag}_scalars.csv").set_index("name")["value"]


def fitted_once(tmp_path_factory, worker_id, name, make):
    """``make()``'s fit, made once per test run however many xdist workers ask for it: the first to ask fits
    and saves it, the others wait and load it, and every worker gets the loaded fit (bit for bit the same)."""
    import fcntl

    from misterp import load_fit, save_fit

    root = tmp_path_factory.getbasetemp()
    root = root if worker_id == "master" else root.parent  # the workers' temp folders share a parent
    path = root / f"{name}.fit"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists():
            save_fit(make(), path)
    return load_fit(path)


@pytest.fixture(scope="session")
def article_fit(article_survey, article_frame, tmp_path_factory, worker_id):
    """The Bayesian engine on the article, rstanarm's defaults, seed 2026 (shared: it takes seconds)."""
    from misterp import Survey, prepare
    from misterp.engines.bayes import BayesEngine

    cells, _ = prepare(Survey(article_survey, "response"), article_frame, "response ~ (1|class)")
    return fitted_once(tmp_path_factory, worker_id, "article", lambda: BayesEngine(seed=2026, progress=False).fit(cells))


def stan_defaults_fit(tmp_path_factory, worker_id, family, response, formula):
    """The Bayesian engine with rstanarm's defaults, seed 3, on tests/fixtures/{family}_survey.csv and its
    frame (tests/fixtures/r/make_{family}.R), warnings silenced: the fit and the frame."""
    import warnings

    from misterp import Frame, MisterpWarning, Survey, prepare
    from misterp.engines.bayes import BayesEngine

    frame = Frame(pd.read_csv(FIXTURES / f"{family}_frame.csv"), "N")
    cells = prepare(Survey(pd.read_csv(FIXTURES / f"{family}_survey.csv"), response), frame, formula,
                    family=family)[0]

    def fit():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MisterpWarning)
            return BayesEngine(seed=3, progress=False).fit(cells)

    return fitted_once(tmp_path_factory, worker_id, family, fit), frame


# shared by each family's tests against rstanarm and the fit contract (a sampler compiles for seconds)
@pytest.fixture(scope="session")
def poisson_bayes_fit(tmp_path_factory, worker_id):
    return stan_defaults_fit(tmp_path_factory, worker_id, "poisson", "visits",
                             "visits ~ male + (1|state) + (1|age) + offset(log(years))")


@pytest.fixture(scope="session")
def gaussian_bayes_fit(tmp_path_factory, worker_id):
    return stan_defaults_fit(tmp_path_factory, worker_id, "gaussian", "score", "score ~ male + (1|state) + (1|age)")
