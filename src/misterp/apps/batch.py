"""``misterp batch spec.yaml``: many MRP models, one job per outcome × wave × subset × formula × engine.

The flow: :func:`load_spec` reads and checks the YAML spec and expands it into :class:`Job` values,
each keyed by a hash of its inputs (the data files' content, the frame, formula, engine, options and
seed); :func:`run` skips the jobs that the manifest says are finished and runs the others on Dask
(a ``LocalCluster``, or a running scheduler), in local processes when Dask is not installed, or in
this process (``backend="serial"``). A job runs the stages of ``misterp fit`` (:func:`run_job`, through
``cli.fit_and_poststratify``) with one BLAS and one XLA thread, and the tables it reads are kept in
its worker between jobs. Every finished job's estimate table lands in one Parquet dataset,
``OUT/outcome=…/wave=…/KEY.parquet``, and one line in ``OUT/_manifest.jsonl``; :func:`read_results`
reads the dataset back. The spec's schema is in docs/batch.md.

Example
-------
>>> import pandas as pd, tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> pd.DataFrame({"y": [1, 0, 1, 1, 0, 0], "g": list("aabbcc")}).to_csv(folder / "s.csv", index=False)
>>> pd.DataFrame({"g": list("abc"), "N": [10, 20, 30]}).to_csv(folder / "f.csv", index=False)
>>> _ = (folder / "spec.yaml").write_text("survey: s.csv\\nframe: f.csv\\ncount: N\\noutcomes: [y]\\n"
...     "formulas: ['~ (1|g)', '~ factor(g)']\\nengine: glm\\nout: results\\n")
>>> spec = load_spec(folder / "spec.yaml")
>>> [(job.formula, job.engine, len(job.key)) for job in spec.jobs]
[('y ~ (1|g)', 'glm', 16), ('y ~ factor(g)', 'glm', 16)]
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import socket
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import quote

import pandas as pd

from ..data.adjacency import BUILT_IN as BUILT_IN_ADJACENCY
from ..errors import MisterpInputError

FORMAT = 1  # part of every key: bump it when a job's inputs or outputs change meaning
MANIFEST = "_manifest.jsonl"  # a leading '_' keeps Parquet readers from taking it for data
KEY_COLUMNS = ["key", "outcome", "wave", "subset", "formula", "engine", "worker", "seconds"]
# Read by BLAS and XLA when they start, so they must be in a worker's environment before numpy's
# BLAS or JAX first runs there: n workers × m threads each on n cores only thrash.
PIN_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "VECLIB_MAXIMUM_THREADS": "1", "NUMEXPR_NUM_THREADS": "1"}
XLA_PIN = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
INSTALL_HINT = ("Dask is not installed, so the jobs run in local processes on this machine; "
                "pip install 'misterp[dask]' to run them on Dask (a local cluster with a dashboard, or a "
                "cluster with --scheduler ADDRESS).")
SPEC_KEYS = ["survey", "waves", "frame", "count", "join", "outcomes", "subsets", "formulas", "engine", "options",
             "seed", "retries", "out"]
ENGINES = ("glm", "laplace", "bayes", "inla")
# The options of `misterp fit` that are not a spec's options: its own keys, or what a batch does itself.
# wave: a batch's waves are its own key, each fitted alone
NOT_OPTIONS = {"survey", "frame", "formula", "count", "join", "engine", "seed", "out", "workers", "quiet",
               "no_progress", "check", "calibrate", "save_fit", "wave", "turnout", "choices"}


@dataclass(frozen=True)
class DataFile:
    """A file a job reads: its absolute path and the sha256 of its content (what the key holds)."""

    path: str
    digest: str


@dataclass(frozen=True)
class Job:
    """One model: its names in the results, and everything its key hashes.

    ``wave_rows`` is (column, value) when the wave is a slice of a shared survey; ``subset_query`` is a
    pandas query on the survey (None: every row); ``options`` are the fit options as sorted (name, value)
    pairs.
    """

    key: str
    outcome: str
    wave: str
    subset: str
    formula: str
    engine: str
    seed: int
    survey: DataFile
    wave_rows: tuple | None
    subset_query: str | None
    frame: DataFile
    count: str
    join: tuple[DataFile, ...]
    recode: DataFile | None
    options: tuple

    def describe(self) -> str:
        """The job's names, for messages."""
        return (f"outcome {self.outcome}, wave {self.wave}, subset {self.subset}, engine {self.engine}, "
                f"formula {self.formula!r}")


@dataclass(frozen=True)
class Spec:
    """A checked spec: its jobs (outcomes × waves × subsets × formulas × engines, in that nesting order),
    the results folder and the retries of a failed job."""

    source: str
    jobs: tuple[Job, ...]
    out: Path
    retries: int


@dataclass
class Summary:
    """What :func:`run` did: jobs in the spec, those skipped as finished before, and this run's
    finished keys and failures (key → error)."""

    jobs: int
    skipped: int
    out: Path
    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    notes: dict[str, list[str]] = field(default_factory=dict)  # finished key -> its notes and warnings

    @property
    def scheduled(self) -> int:
        return len(self.done) + len(self.failed)


def notes_digest(notes: dict[str, list[str]], shown: int = 8) -> list[str]:
    """Terminal lines summing up the jobs' notes (key -> notes): every warning with the jobs that
    gave it, then the ``shown`` most common other notes with their counts; the manifest keeps all.

    >>> notes_digest({"a1": ["warning: singular fit", "100 respondents"], "b2": ["warning: singular fit"]})
    ['warning in 2 job(s) (a1, b2): singular fit', 'note in 1 job(s): 100 respondents']
    """
    by_text: dict[str, list[str]] = {}
    for key, texts in notes.items():
        for text in dict.fromkeys(texts):
            by_text.setdefault(text, []).append(key)
    warnings = [(t, keys) for t, keys in by_text.items() if t.startswith("warning: ")]
    others = sorted(((t, keys) for t, keys in by_text.items() if not t.startswith("warning: ")),
                    key=lambda item: -len(item[1]))
    lines = [f"warning in {len(keys)} job(s) ({', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}): "
             f"{text.removeprefix('warning: ')}" for text, keys in warnings]
    lines += [f"note in {len(keys)} job(s): {text}" for text, keys in others[:shown]]
    if len(others) > shown:
        lines.append(f"{len(others) - shown} other note(s): see the manifest ({MANIFEST})")
    return lines


# ---------------------------------------------------------------------------------------------
# The spec


def file_digest(path) -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _spec_error(source, key: str, problem: str, fix: str) -> MisterpInputError:
    return MisterpInputError(f"The batch spec {str(source)!r}: {key!r} {problem}. {fix}")


def _names(source, key: str, value, what: str) -> list[str]:
    """A string or a non-empty list of distinct strings."""
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(isinstance(v, str) and v.strip() for v in values):
        raise _spec_error(source, key, f"must be {what}: a string or a list of strings, not {value!r}",
                          f"Write e.g. '{key}: [a, b]'.")
    values = [v.strip() for v in values]
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise _spec_error(source, key, f"repeats {repeated}", "List each once.")
    return values


def _data_file(source, key: str, value, folder: Path, digests: dict) -> DataFile:
    """A path from the spec (relative to the spec's folder), checked and hashed once per load."""
    if not isinstance(value, str) or not value.strip():
        raise _spec_error(source, key, f"must be a file path, not {value!r}",
                          "Give a CSV or Parquet path, relative to the spec's folder or absolute.")
    path = (folder / value.strip()).resolve()
    if not path.is_file():
        raise _spec_error(source, key, f"names {str(path)!r}, which does not exist or is not a file",
                          "Check the path (it is read relative to the spec's folder).")
    if path not in digests:
        digests[path] = file_digest(path)
    return DataFile(str(path), digests[path])


@dataclass(frozen=True)
class _Wave:
    name: str
    survey: DataFile
    rows: tuple | None


def _waves(source, spec: dict, folder: Path, digests: dict) -> list[_Wave]:
    """The waves: one survey file for all (optionally sliced by a column's values), or a file per wave."""
    waves = spec.get("waves")
    survey = spec.get("survey")
    if isinstance(waves, dict) and set(waves) == {"column", "values"}:
        if survey is None:
            raise _spec_error(source, "waves", "slices the survey by a column, but there is no 'survey'",
                              "Add 'survey: PATH', or give one file per wave ('waves: {2016: a.csv, 2018: b.csv}').")
        column, values = waves["column"], waves["values"]
        if not isinstance(column, str) or not column.strip():
            raise _spec_error(source, "waves.column", f"must be a survey column's name, not {column!r}",
                              "Write e.g. 'waves: {column: year, values: [2016, 2018]}'.")
        if (not isinstance(values, list) or not values
                or not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in values)
                or len({str(v) for v in values}) < len(values)):
            raise _spec_error(source, "waves.values", f"must be a list of distinct values, not {values!r}",
                              "Write e.g. 'waves: {column: year, values: [2016, 2018]}'.")
        shared = _data_file(source, "survey", survey, folder, digests)
        return [_Wave(str(v), shared, (column.strip(), v)) for v in values]
    if waves is None:
        if survey is None:
            raise _spec_error(source, "survey", "is missing", "Add 'survey: PATH' (or 'waves', a file per wave).")
        return [_Wave("all", _data_file(source, "survey", survey, folder, digests), None)]
    if not isinstance(waves, dict) or not waves:
        raise _spec_error(source, "waves", f"must be a mapping, not {waves!r}",
                          "Write 'waves: {column: COL, values: [...]}' to slice the survey, or "
                          "'waves: {NAME: PATH, ...}' for a survey file per wave.")
    if survey is not None:
        raise _spec_error(source, "survey", "is given beside 'waves' that name a file per wave",
                          "Drop 'survey', or slice it with 'waves: {column: COL, values: [...]}'.")
    return [_Wave(str(name), _data_file(source, f"waves.{name}", path, folder, digests), None)
            for name, path in waves.items()]


def _subsets(source, value) -> dict[str, str | None]:
    if value is None:
        return {"all": None}
    if not isinstance(value, dict) or not value or not all(
            q is None or (isinstance(q, str) and q.strip()) for q in value.values()):
        raise _spec_error(source, "subsets", f"must map names to pandas queries on the survey, not {value!r}",
                          "Write e.g. \"subsets: {all: null, white: \\\"eth == 'White'\\\"}\" (null: every row).")
    return {str(name): (q.strip() if q else None) for name, q in value.items()}


def _formulas(source, value, outcomes: list[str]) -> list[str]:
    """Each formula's right side ('~ ...'); the outcomes give the left sides, checked by the parser."""
    from ..model.formula import parse_formula

    formulas = _names(source, "formulas", value, "right-hand sides such as '~ male + (1|state)'")
    for i, rhs in enumerate(formulas):
        if not rhs.startswith("~"):
            raise _spec_error(source, f"formulas[{i}]", f"({rhs!r}) has a left side",
                              "Write only the right side, '~ ...': the outcomes give the left side.")
        for outcome in outcomes:
            try:
                parse_formula(f"{outcome} {rhs}")
            except MisterpInputError as e:
                raise _spec_error(source, f"formulas[{i}]", f"does not parse: {e}", "Fix the formula.") from None
    return formulas


def _fit_parser() -> argparse.ArgumentParser:
    from .cli import _fit_arguments

    parser = argparse.ArgumentParser(add_help=False)
    _fit_arguments(parser, required=False)
    return parser


def _defaults() -> dict:
    """The defaults of every ``misterp fit`` option, from its own parser."""
    return vars(_fit_parser().parse_args(["--frame", "", "--count", ""]))


def option_kinds() -> dict[str, tuple[str, tuple | None]]:
    """The fit options a spec may set, name → (kind of value, its choices), read off the fit parser
    so that the two never disagree."""
    kinds = {}
    for action in _fit_parser()._actions:
        if action.dest in NOT_OPTIONS:
            continue
        if action.nargs == 0:
            kind = "flag"
        elif action.choices:
            kind = "choice"
        elif action.type in (int, float):
            kind = "count" if action.type is int else "number"
        elif action.dest == "order":
            kind = "order"  # --order COL=L1,L2: in a spec, {column: [levels]}
        elif action.dest == "levels":
            kind = "levels"  # --levels L1,L2: in a spec, a list or the same text
        elif action.metavar == "NAME":
            kind = "text"
        elif action.metavar in ("FILE", "COL"):
            kind = "file" if action.metavar == "FILE" else "column"
        else:
            kind = "columns"  # --by: comma-separated columns
        kinds[action.dest] = (kind, tuple(action.choices) if action.choices else None)
    return kinds


def _options(source, value, folder: Path, digests: dict) -> dict:
    """The fit options, checked by kind; keys may use '-' or '_'."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _spec_error(source, "options", f"must be a mapping of fit options, not {value!r}",
                          "Write e.g. 'options: {by: [state], family: binomial}'.")
    kinds, options = option_kinds(), {}
    for raw, v in value.items():
        name = str(raw).replace("-", "_")
        key = f"options.{raw}"
        if name not in kinds:
            raise _spec_error(source, key, "is not an option a batch job takes",
                              f"Use one of {sorted(kinds)} (seed and engine are top-level keys; the data files "
                              "are 'survey', 'frame' and 'join').")
        kind, choices = kinds[name]
        ok = {"flag": isinstance(v, bool),
              "count": isinstance(v, int) and not isinstance(v, bool) and v > 0,
              "number": isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0,
              "column": isinstance(v, str) and bool(v.strip()),
              "text": isinstance(v, str) and bool(v.strip()),
              "levels": (isinstance(v, str) and bool(v.strip())) or (isinstance(v, list) and bool(v)),
              "file": isinstance(v, str) and bool(v.strip()),
              "choice": v in (choices or ()),
              "columns": isinstance(v, (str, list)),
              "order": isinstance(v, dict) and all(isinstance(levels, list) and levels for levels in v.values())}[kind]
        if not ok:
            want = {"flag": "true or false", "count": "a positive integer", "number": "a positive number",
                    "column": "a column name", "file": "a file path", "text": "a name",
                    "levels": "a list of levels in order, e.g. [low, middle, high]",
                    "choice": f"one of {list(choices or ())}", "columns": "a list of column names",
                    "order": "a mapping of a column to its levels in order, e.g. {age: [18-29, 30-44, 45+]}"}[kind]
            raise _spec_error(source, key, f"must be {want}, not {v!r}", "Fix its value.")
        if kind == "columns":
            v = _names(source, key, v.split(",") if isinstance(v, str) else v, "column names")
            clash = [c for c in v if c in KEY_COLUMNS]
            if clash:
                raise _spec_error(source, key, f"names {clash}, which are the results' own key columns",
                                  "Rename those frame columns.")
        if kind == "order":
            v = tuple((str(col), tuple(str(level) for level in levels)) for col, levels in v.items())
        if kind == "levels" and isinstance(v, list):
            v = ",".join(str(level) for level in v)
        if kind == "file" and not (name == "adjacency" and v in BUILT_IN_ADJACENCY):
            v = _data_file(source, key, v, folder, digests)
        options[name] = v
    return options


def load_spec(path, out=None) -> Spec:
    """Read, check and expand a batch spec (YAML; schema in docs/batch.md) into its jobs.

    ``out`` overrides the spec's ``out``. A bad spec is a :class:`MisterpInputError` naming the key
    and the fix. Paths in the spec are relative to its folder.
    """
    from ..data.tables import read_yaml
    from .cli import _check_options, default_engine

    source = str(path)
    spec = read_yaml(path, "batch spec")
    if not isinstance(spec, dict):
        raise MisterpInputError(f"The batch spec {source!r} must be a YAML mapping of {SPEC_KEYS}; it holds "
                                f"{type(spec).__name__}. See docs/batch.md for the schema.")
    unknown = [k for k in spec if k not in SPEC_KEYS]
    if unknown:
        raise _spec_error(source, unknown[0], "is not a batch spec key", f"Use only {SPEC_KEYS}.")
    for key in ("frame", "count", "outcomes", "formulas"):
        if spec.get(key) is None:
            raise _spec_error(source, key, "is missing", "Add it (see docs/batch.md).")
    folder, digests = Path(path).resolve().parent, {}
    waves = _waves(source, spec, folder, digests)
    frame = _data_file(source, "frame", spec["frame"], folder, digests)
    count = _names(source, "count", spec["count"], "the frame's count column")
    if len(count) != 1:
        raise _spec_error(source, "count", "names more than one column", "Name the frame's one count column.")
    joins = spec.get("join") or []
    joins = tuple(_data_file(source, f"join[{i}]", p, folder, digests)
                  for i, p in enumerate([joins] if isinstance(joins, str) else joins))
    outcomes = _names(source, "outcomes", spec["outcomes"], "survey outcome columns")
    subsets = _subsets(source, spec.get("subsets"))
    formulas = _formulas(source, spec["formulas"], outcomes)
    options = _options(source, spec.get("options"), folder, digests)
    default = default_engine(options.get("bootstrap"), options.get("ml"), options.get("family", "binomial"))
    engines = _names(source, "engine", spec.get("engine", default), f"engines among {ENGINES}")
    if any(e not in ENGINES for e in engines):
        raise _spec_error(source, "engine", f"names {[e for e in engines if e not in ENGINES]}",
                          f"Use {', '.join(ENGINES)}.")
    seed, retries = spec.get("seed", 1), spec.get("retries", 1)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise _spec_error(source, "seed", f"must be an integer >= 0, not {seed!r}", "Write e.g. 'seed: 1'.")
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise _spec_error(source, "retries", f"must be an integer >= 0, not {retries!r}", "Write e.g. 'retries: 2'.")
    out = out if out is not None else spec.get("out")
    if not isinstance(out, (str, Path)) or not str(out).strip():
        raise _spec_error(source, "out", "is missing", "Name the results folder ('out: results'), or give --out.")
    recode = options.pop("map", None)
    for engine in engines:  # options that do not go together, named before any job runs
        try:
            _check_options(argparse.Namespace(**{**_defaults(), **options, "engine": engine}))
        except MisterpInputError as e:
            raise _spec_error(source, "options", f"do not suit engine {engine}: {e}", "Change them.") from None
    jobs = []
    for outcome in outcomes:
        for wave in waves:
            for subset, query in subsets.items():
                for rhs in formulas:
                    for engine in engines:
                        formula = f"{outcome} {rhs}"
                        inputs = {"format": FORMAT, "survey": wave.survey.digest, "wave": [wave.name, wave.rows],
                                  "subset": [subset, query], "frame": frame.digest, "count": count[0],
                                  "join": [j.digest for j in joins], "map": recode.digest if recode else None,
                                  "outcome": outcome, "formula": formula, "engine": engine, "options": options,
                                  "seed": seed}
                        key = hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()
                        jobs.append(Job(key[:16], outcome, wave.name, subset, formula, engine, seed, wave.survey,
                                        wave.rows, query, frame, count[0], joins, recode,
                                        tuple(sorted((k, tuple(v) if isinstance(v, list) else v)
                                                     for k, v in options.items()))))
    return Spec(source, tuple(jobs), Path(out) if Path(out).is_absolute() else folder / out, retries)


# ---------------------------------------------------------------------------------------------
# One job, in a worker


class _Lru:
    """A small per-process cache: tables, frames and survey slices kept between a worker's jobs."""

    def __init__(self, size: int):
        self.size, self.items = size, OrderedDict()

    def get(self, key, make):
        if key in self.items:
            self.items.move_to_end(key)
            return self.items[key]
        value = make()
        self.items[key] = value
        if len(self.items) > self.size:
            self.items.popitem(last=False)
        return value


_CACHE = _Lru(32)


def pin_threads() -> None:
    """One BLAS and one XLA thread for this process's jobs: environment variables that BLAS and JAX
    read when they start (XLA's only before JAX is imported); :func:`run_job` also limits BLAS
    libraries already loaded, through threadpoolctl."""
    for name, value in PIN_ENV.items():
        os.environ.setdefault(name, value)
    flags = os.environ.get("XLA_FLAGS", "")
    if "jax" not in sys.modules and "intra_op_parallelism_threads" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {XLA_PIN}".strip()


def _table(data: DataFile, what: str) -> pd.DataFrame:
    """A data file's table, read once per worker; a file changed since the spec was read is refused."""
    from ..data.tables import read_table

    def read():
        if file_digest(data.path) != data.digest:
            raise MisterpInputError(f"The {what} file {data.path!r} changed after the batch started (its content "
                                    "hash differs from the spec's). Run misterp batch again.")
        return read_table(data.path, what)

    return _CACHE.get(("table", data.path, data.digest), read)


def _frame(job: Job):
    from ..data.frame import read_frame

    return _CACHE.get(("frame", job.frame.digest, job.count, tuple(j.digest for j in job.join)),
                      lambda: read_frame(_table(job.frame, "frame"), job.count,
                                         join=[_table(j, "join") for j in job.join]))


def _survey(job: Job, args):
    """The job's survey: the file read (and recoded, joined) once per worker, then its wave and subset."""
    from ..data.survey import read_survey

    base_key = ("survey", job.survey.digest, job.outcome, args.weights, args.trials, args.exposure,
                tuple(j.digest for j in job.join), job.recode.digest if job.recode else None)
    base = _CACHE.get(base_key, lambda: read_survey(
        _table(job.survey, "survey"), job.outcome, weights=args.weights, trials=args.trials, exposure=args.exposure,
        join=[_table(j, "join") for j in job.join], recode=job.recode.path if job.recode else None))
    return _CACHE.get(base_key + (job.wave_rows, job.subset_query), lambda: _slice(base, job))


def _slice(survey, job: Job):
    data = survey.data
    if job.wave_rows is not None:
        column, value = job.wave_rows
        if column not in data:
            raise MisterpInputError(f"waves.column names {column!r}, which is not a survey column "
                                    f"({list(data.columns)}). Fix 'waves' in the spec.")
        values = data[column]
        numeric = pd.api.types.is_numeric_dtype(values) and isinstance(value, (int, float))
        data = data[values == value] if numeric else data[values.astype(str) == str(value)]
    if job.subset_query is not None:
        try:
            data = data.query(job.subset_query)
        except Exception as e:  # any query failure is the spec's, not a bug
            raise MisterpInputError(f"subset {job.subset!r}: the query {job.subset_query!r} fails on the survey "
                                    f"({type(e).__name__}: {e}). Fix it (pandas query syntax, e.g. "
                                    "\"eth == 'White'\").") from None
    if data.empty:
        raise MisterpInputError(f"wave {job.wave!r} and subset {job.subset!r} leave no survey rows. Check the "
                                "wave's values and the subset's query.")
    return replace(survey, data=data.reset_index(drop=True))


def fit_args(job: Job) -> argparse.Namespace:
    """The ``misterp fit`` options a job amounts to (its defaults from the fit parser)."""
    args = argparse.Namespace(**copy.deepcopy(_CACHE.get("defaults", _defaults)))  # no list shared by two jobs
    for name, value in job.options:
        setattr(args, name, list(value) if isinstance(value, tuple) else value)
    args.survey, args.frame, args.count = job.survey.path, job.frame.path, job.count
    args.join = [j.path for j in job.join]
    args.map = job.recode.path if job.recode else None
    args.formula, args.engine, args.seed = job.formula, job.engine, job.seed
    args.quiet = args.no_progress = True
    return args


def _worker() -> str:
    """The Dask worker's address, or host and process id outside Dask."""
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return f"{socket.gethostname()}:pid{os.getpid()}"


def run_job(job: Job) -> dict:
    """Run one job here: read (once per worker) → prepare → fit → cell_draws → poststratify.

    Returns a record: key, status ("done" or "failed"), table (the estimate table, one row per group)
    or error, notes, worker and seconds. A :class:`MisterpInputError` (the job's data or model) fails
    the job at once; any other exception is raised, so that the scheduler's retries rerun it.
    """
    from threadpoolctl import threadpool_limits

    from ..model.cells import prepare
    from ..model.formula import parse_formula
    from .cli import _check_options, family_from_args, fit_and_poststratify, structure_options

    start = time.perf_counter()
    record = {"key": job.key, "worker": _worker(), "table": None, "error": None, "notes": []}
    try:
        with threadpool_limits(1):
            args = fit_args(job)
            _check_options(args)
            formula = parse_formula(job.formula)
            survey, frame = _survey(job, args), _frame(job)
            # the cells (and design) of a survey slice and formula serve every engine fitted to them
            prepared = _CACHE.get(("cells", job.survey.digest, job.wave_rows, job.subset_query, job.formula,
                                   args.family, args.drop_missing, job.options),
                                  lambda: prepare(survey, frame, formula, drop_missing=args.drop_missing,
                                                  family=family_from_args(args), **structure_options(args)))
            estimate, notes, _ = fit_and_poststratify(args, formula, survey, frame, prepared)
    except MisterpInputError as e:
        return {**record, "status": "failed", "error": str(e), "seconds": time.perf_counter() - start}
    return {**record, "status": "done", "table": estimate.table, "notes": notes,
            "seconds": time.perf_counter() - start}


def _on_worker(runner, job: Job) -> dict:
    """A Dask task: pin the threads (a worker of a remote cluster may not have), then run the job."""
    pin_threads()
    return runner(job)


# ---------------------------------------------------------------------------------------------
# Results and the manifest


def _partition(out: Path, job: Job) -> Path:
    # hive-style folders, values percent-encoded as pyarrow decodes them
    return out / f"outcome={quote(job.outcome, safe='')}" / f"wave={quote(job.wave, safe='')}"


def _write(out: Path, job: Job, record: dict) -> str:
    """The job's rows as one Parquet file of the dataset (written aside, then renamed into place)."""
    keys = pd.DataFrame({"key": job.key, "subset": job.subset, "formula": job.formula, "engine": job.engine,
                         "worker": record["worker"], "seconds": float(record["seconds"])},
                        index=record["table"].index)
    folder = _partition(out, job)
    folder.mkdir(parents=True, exist_ok=True)
    part = folder / f"{job.key}.parquet"
    hidden = folder / f".{job.key}.parquet.tmp"  # a leading '.' hides it from readers until renamed
    pd.concat([keys, record["table"]], axis=1).to_parquet(hidden, index=False)
    os.replace(hidden, part)
    return str(part.relative_to(out))


def finished(out: Path) -> dict[str, dict]:
    """The manifest's finished jobs, key → its last record, where the result file is still there."""
    path = Path(out) / MANIFEST
    last = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by a crash: that job simply runs again
                continue
            last[record.get("key")] = record
    return {k: r for k, r in last.items() if r.get("status") == "done" and (Path(out) / r.get("file", "")).is_file()}


def _append(out: Path, record: dict) -> None:
    with open(out / MANIFEST, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, default=str) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_results(out, keys=None) -> pd.DataFrame:
    """The dataset under ``out`` as one table: KEY_COLUMNS then each job's estimate columns, sorted by
    key (and, within a job, in its table's order); ``keys`` keeps those jobs only."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    partitioning = ds.partitioning(pa.schema([("outcome", pa.string()), ("wave", pa.string())]), flavor="hive")
    files = sorted(str(p) for p in Path(out).glob("outcome=*/wave=*/*.parquet"))
    if not files:
        return pd.DataFrame(columns=KEY_COLUMNS)
    first = ds.dataset(files, format="parquet", partitioning=partitioning, partition_base_dir=str(out))
    # jobs may differ in columns (a family's extra ones): read all under their union
    schema = pa.unify_schemas([f.physical_schema for f in first.get_fragments()] + [partitioning.schema])
    dataset = ds.dataset(files, schema=schema, format="parquet", partitioning=partitioning,
                         partition_base_dir=str(out))
    table = dataset.to_table().to_pandas()
    if keys is not None:
        table = table[table["key"].isin(set(keys))]
    table["_row"] = table.groupby("key").cumcount()
    table = table.sort_values(["key", "_row"]).drop(columns="_row").reset_index(drop=True)
    return table[KEY_COLUMNS + [c for c in table.columns if c not in KEY_COLUMNS]]


# ---------------------------------------------------------------------------------------------
# Running the spec


def _failure(job: Job, error: BaseException, worker: str = "", trace=None) -> dict:
    """A failed record for an unexpected exception; its traceback goes to the manifest, not the screen."""
    import traceback

    trace = trace if trace is not None else error.__traceback__
    return {"key": job.key, "status": "failed", "error": f"{type(error).__name__}: {error}", "table": None,
            "notes": [], "worker": worker, "seconds": 0.0,
            "traceback": "".join(traceback.format_exception(type(error), error, trace))}


def _serial(jobs, runner, retries: int):
    """Each job in this process, in order; an unexpected error is retried up to ``retries`` times."""
    for job in jobs:
        for attempt in range(retries + 1):
            try:
                yield job, runner(job)
                break
            except Exception as e:  # reported with its key, and the other jobs go on
                if attempt == retries:
                    yield job, _failure(job, e, _worker())


def _processes(jobs, runner, retries: int, workers: int):
    """The jobs in local processes (spawned, so no thread or JAX state is inherited). A pool whose
    process died is replaced, and its unfinished jobs rerun, each up to ``retries`` times."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    attempts, pending = {job.key: 0 for job in jobs}, list(jobs)
    while pending:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=pin_threads) as pool:
            futures = {pool.submit(runner, job): job for job in pending}
            pending = []
            for future in as_completed(futures):
                job = futures[future]
                try:
                    yield job, future.result()
                except Exception as e:  # BrokenProcessPool included: a worker died
                    attempts[job.key] += 1
                    if attempts[job.key] > retries:
                        yield job, _failure(job, e)
                    else:
                        pending.append(job)


def local_cluster(workers: int | None = None, dashboard: str = ":8787"):
    """The Dask ``LocalCluster`` that :func:`run` starts: ``workers`` processes (the CPU count by default)
    of one thread each, with BLAS and XLA pinned to one thread before they start."""
    import logging

    import distributed

    return distributed.LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1, processes=True,
                                    env={**PIN_ENV, "XLA_FLAGS": XLA_PIN}, dashboard_address=dashboard,
                                    silence_logs=logging.CRITICAL)


def _dask(jobs, runner, retries: int, client, scheduler, workers, dashboard, echo):
    """The jobs on Dask: the given client, a running scheduler, or a LocalCluster of one-thread workers.

    A task that raises is retried ``retries`` times by Dask; a task whose worker dies is rescheduled
    on another (up to distributed.scheduler.allowed-failures times).
    """
    import distributed

    owned = []
    try:
        if client is None:
            if scheduler:
                client = distributed.Client(scheduler_file=scheduler) if Path(scheduler).is_file() \
                    else distributed.Client(scheduler)
                owned.append(client)
            else:
                cluster = local_cluster(workers, dashboard)
                client = distributed.Client(cluster)
                owned += [cluster, client]
        echo(f"Dask dashboard: {client.dashboard_link} ({len(client.scheduler_info()['workers'])} worker(s))")
        futures = {client.submit(_on_worker, runner, job, key=f"misterp-job-{job.key}", retries=retries): job
                   for job in jobs}
        for future in distributed.as_completed(futures):
            job = futures[future]
            try:
                record = future.result()
            except Exception as e:  # the task's own error after its retries, or KilledWorker
                record = _failure(job, e, trace=future.traceback())
            future.release()
            yield job, record
    finally:
        for thing in reversed(owned):
            thing.close()


def run(spec, *, out=None, scheduler: str | None = None, workers: int | None = None, backend: str | None = None,
        client=None, runner=None, progress: bool | None = None, quiet: bool = False,
        dashboard: str = ":8787") -> Summary:
    """Run a batch spec's unfinished jobs; returns a :class:`Summary`.

    ``spec`` is a path or a :class:`Spec`. The jobs run on Dask when it is installed (``client``, or
    ``scheduler``: an address or a scheduler file, or else a ``LocalCluster`` of ``workers``
    one-thread workers, the CPU count by default), otherwise in ``workers`` local processes;
    ``backend`` ("dask", "processes" or "serial": in this process) chooses instead.
    ``runner`` runs one job (:func:`run_job`). Each finished job is
    written to the dataset and the manifest at once, so an interrupted run loses no finished job;
    a failed job is reported with its key and error, and the others go on. ``progress`` (a bar on
    stderr) defaults to whether stderr is a terminal; ``quiet`` leaves only the failures.
    """
    from tqdm import tqdm

    if not isinstance(spec, Spec):
        spec = load_spec(spec, out)
    elif out is not None:
        spec = replace(spec, out=Path(out))
    runner = runner or run_job
    progress = sys.stderr.isatty() and not quiet if progress is None else progress
    start = time.perf_counter()
    bar = tqdm(total=0, disable=not progress, unit="job", desc="misterp batch", file=sys.stderr)

    def echo(text: str, always: bool = False) -> None:
        if always or not quiet:
            bar.write(f"misterp: {text}", file=sys.stderr)

    out = spec.out
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise MisterpInputError(f"Cannot create the results folder {str(out)!r}: {e.strerror}. Check 'out' in the "
                                "spec (or --out).") from None
    done_before = finished(out)
    todo = [job for job in spec.jobs if job.key not in done_before]
    summary = Summary(len(spec.jobs), len(spec.jobs) - len(todo), out)
    others = len(set(done_before) - {job.key for job in spec.jobs})
    echo(f"{len(spec.jobs)} job(s) in {spec.source}: {len(todo)} to run, {summary.skipped} finished before"
         + (f"; {others} result(s) in {out} are from jobs not in this spec (kept)" if others else ""))
    if not todo:
        bar.close()
        echo(f"nothing to run; the results are in {out}")
        return summary
    if backend not in (None, "dask", "processes", "serial"):
        raise MisterpInputError(f"backend is 'dask', 'processes' or 'serial', not {backend!r}.")
    if backend is None and client is None:
        try:
            import distributed  # noqa: F401
        except ImportError:
            if scheduler:
                raise MisterpInputError(f"--scheduler needs Dask, which is not installed. {INSTALL_HINT}") from None
            echo(INSTALL_HINT, always=True)
            backend = "processes"
    if backend == "serial":
        results = _serial(todo, runner, spec.retries)
    elif backend == "processes":
        results = _processes(todo, runner, spec.retries, workers or os.cpu_count() or 1)
    else:
        results = _dask(todo, runner, spec.retries, client, scheduler, workers, dashboard, echo)
    bar.reset(total=len(todo))
    try:
        for job, record in results:
            entry = {"key": job.key, "status": record["status"], "outcome": job.outcome, "wave": job.wave,
                     "subset": job.subset, "formula": job.formula, "engine": job.engine, "worker": record["worker"],
                     "seconds": round(float(record["seconds"]), 4), "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
            if record["status"] == "done":
                entry.update(file=_write(out, job, record), notes=record["notes"])
                summary.done.append(job.key)
                summary.notes[job.key] = list(record["notes"])
            else:
                entry.update(error=record["error"], traceback=record.get("traceback"))
                summary.failed[job.key] = record["error"]
                echo(f"job {job.key} failed ({job.describe()}): {record['error']}", always=True)
            _append(out, entry)
            bar.update()
    finally:
        results.close()
        bar.close()
    summary.seconds = time.perf_counter() - start
    for line in notes_digest(summary.notes):
        echo(line)
    echo(f"{len(summary.done)} job(s) done, {len(summary.failed)} failed, in {summary.seconds:.1f} s; results in "
         f"{out} (misterp.apps.batch.read_results), log in {out / MANIFEST}"
         + ("; run the spec again to retry the failed jobs" if summary.failed else ""))
    return summary
