"""misterp batch: spec checks and keys, Dask against the serial run, a killed worker, reruns, failed
jobs and the local-process fallback without Dask."""

import itertools
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from misterp.apps import batch
from misterp.apps.batch import load_spec, read_results, run, run_job
from misterp.apps.cli import main
from misterp.errors import MisterpInputError

FORMULAS = ["~ x + (1|g)", "~ (1|g) + (1|h)", "~ x + (1|g) + (1|h)", "~ (1|g)", "~ x + (1|h)"]
TIMING = ["worker", "seconds"]  # the only columns that may differ between runs


@pytest.fixture()
def folder(tmp_path):
    """A small two-wave survey with two outcomes (600 rows) and its 36-cell frame."""
    rng = np.random.default_rng(7)
    n = 600
    survey = pd.DataFrame({"wave": rng.integers(1, 3, n), "g": rng.choice(list("abcdef"), n),
                           "h": rng.choice(list("xyz"), n), "x": rng.choice([-0.5, 0.5], n)})
    eta = survey["g"].map(dict(zip("abcdef", [-1.0, -0.5, 0.0, 0.3, 0.6, 1.0]))) + 0.8 * survey["x"]
    survey["y1"] = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int)
    survey["y2"] = (rng.random(n) < 1 / (1 + np.exp(eta - 0.5))).astype(int)
    survey.to_csv(tmp_path / "survey.csv", index=False)
    frame = pd.DataFrame(list(itertools.product("abcdef", "xyz", [-0.5, 0.5])), columns=["g", "h", "x"])
    frame["N"] = rng.integers(100, 1000, len(frame))
    frame.to_csv(tmp_path / "frame.csv", index=False)
    return tmp_path


def write_spec(folder, name="spec.yaml", **fields):
    spec = {"survey": "survey.csv", "waves": {"column": "wave", "values": [1, 2]}, "frame": "frame.csv",
            "count": "N", "outcomes": ["y1", "y2"], "formulas": FORMULAS, "engine": "laplace",
            "options": {"by": ["g"]}, "seed": 3, "out": "results"}
    spec.update(fields)
    spec = {k: v for k, v in spec.items() if v is not None}
    (folder / name).write_text(yaml.safe_dump(spec))
    return folder / name


def without_timing(table):
    return table.drop(columns=TIMING).reset_index(drop=True)


def test_spec_expands_into_keyed_jobs(folder):
    spec = load_spec(write_spec(folder, subsets={"all": None, "men": "x > 0"}))
    assert len(spec.jobs) == 2 * 2 * 2 * 5 and len({j.key for j in spec.jobs}) == 40
    first = spec.jobs[0]
    assert (first.outcome, first.wave, first.subset, first.formula) == ("y1", "1", "all", "y1 ~ x + (1|g)")
    keys = {j.key for j in spec.jobs}
    # the key follows the data's content, not its path
    (folder / "moved").mkdir()
    shutil.copy(folder / "survey.csv", folder / "moved" / "survey.csv")
    moved = load_spec(write_spec(folder, survey="moved/survey.csv", subsets={"all": None, "men": "x > 0"}))
    assert {j.key for j in moved.jobs} == keys
    # ... and changes with the data, the seed and the options
    edited = pd.read_csv(folder / "moved" / "survey.csv")
    edited.loc[0, "y1"] = 1 - edited.loc[0, "y1"]
    edited.to_csv(folder / "moved" / "survey.csv", index=False)
    for other in (dict(survey="moved/survey.csv"), dict(seed=4), dict(options={"by": ["h"]})):
        changed = load_spec(write_spec(folder, subsets={"all": None, "men": "x > 0"}, **other))
        assert not keys & {j.key for j in changed.jobs}, other


def test_docs_list_every_option_a_spec_takes():
    docs = (Path(__file__).resolve().parents[2] / "docs" / "batch.md").read_text()
    assert [name for name in batch.option_kinds() if f"`{name}`" not in docs] == []


@pytest.mark.parametrize("fields, key", [
    (dict(outcomes=None), "'outcomes' is missing"),
    (dict(formulas=["y1 ~ x"]), "'formulas[0]'"),
    (dict(formulas=["~ x + (1|g"]), "'formulas[0]' does not parse"),
    (dict(engine="lme4"), "'engine'"),
    (dict(options={"bootstap": 10}), "'options.bootstap'"),
    (dict(options={"bootstrap": 10}, engine="glm"), "'options' do not suit engine glm"),
    (dict(options={"by": ["key"]}), "'options.by'"),
    (dict(waves={"column": "wave", "values": "1"}), "'waves.values'"),
    (dict(frame="nowhere.csv"), "'frame' names"),
    (dict(retries=-1), "'retries'"),
    (dict(colour="red"), "'colour' is not a batch spec key"),
])
def test_bad_specs_name_the_key_and_exit_2(folder, capsys, fields, key):
    path = write_spec(folder, **fields)
    with pytest.raises(MisterpInputError, match=key.replace("[", r"\[").replace("(", r"\(")):
        load_spec(path)
    assert main(["batch", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("misterp: error: The batch spec") and "Traceback" not in err and err.count("\n") == 1


def test_a_worker_reads_each_file_once(folder, monkeypatch):
    reads = []
    original = batch.file_digest
    monkeypatch.setattr(batch, "file_digest", lambda path: reads.append(os.path.basename(path)) or original(path))
    spec = load_spec(write_spec(folder, formulas=FORMULAS[:2]))
    assert sorted(reads) == ["frame.csv", "survey.csv"]  # hashed once for the whole spec
    reads.clear()
    batch._CACHE.items.clear()
    records = [run_job(job) for job in spec.jobs]
    assert [r["status"] for r in records] == ["done"] * 8
    assert sorted(reads) == ["frame.csv", "survey.csv"]  # and read (checked against its hash) once per worker


def test_local_cluster_of_three_matches_the_serial_run(folder, capsys, monkeypatch):
    pytest.importorskip("distributed")
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # conftest.py's: the workers'
        monkeypatch.delenv(name, raising=False)                                   # one thread must be batch's
    path = write_spec(folder)
    serial = run(path, out=folder / "serial", backend="serial")
    assert serial.scheduled == 20 and not serial.failed

    def pinned(job):  # what each Dask worker's threads look like, kept in the job's notes
        from threadpoolctl import threadpool_info

        record = run_job(job)
        blas = sorted({p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"})
        record["notes"].append(json.dumps({"blas": blas, "xla": os.environ.get("XLA_FLAGS", "")}))
        return record

    summary = run(path, workers=3, runner=pinned, dashboard=":0")
    assert summary.scheduled == 20 and not summary.failed
    err = capsys.readouterr().err
    assert "Dask dashboard: http" in err and "(3 worker(s))" in err
    dask, local = read_results(folder / "results"), read_results(folder / "serial")
    assert len(dask) == 20 * 6 and dask["key"].nunique() == 20
    pd.testing.assert_frame_equal(without_timing(dask), without_timing(local))
    assert dask["worker"].str.startswith("tcp://").all() and dask["worker"].nunique() >= 2
    assert set(dask["outcome"]) == {"y1", "y2"} and set(dask["wave"]) == {"1", "2"}
    manifest = [json.loads(line) for line in (folder / "results" / "_manifest.jsonl").read_text().splitlines()]
    threads = [json.loads(r["notes"][-1]) for r in manifest]
    assert all(t["blas"] == [1] and "intra_op_parallelism_threads=1" in t["xla"] for t in threads)


def test_rerunning_the_spec_schedules_no_job(folder, capsys):
    path = write_spec(folder, outcomes=["y1"], waves=None, formulas=FORMULAS[:2])
    assert run(path, backend="serial").scheduled == 2
    manifest = (folder / "results" / "_manifest.jsonl").read_text()

    def refuse(job):
        raise AssertionError(f"job {job.key} was scheduled again")

    again = run(path, runner=refuse)
    assert (again.scheduled, again.skipped) == (0, 2)
    assert main(["batch", str(path)]) == 0
    assert "0 to run, 2 finished before" in capsys.readouterr().err
    assert (folder / "results" / "_manifest.jsonl").read_text() == manifest
    # a result file gone from the dataset is run again
    next((folder / "results").rglob("*.parquet")).unlink()
    assert run(path, backend="serial").scheduled == 1


def test_a_killed_worker_loses_no_result(folder):
    distributed = pytest.importorskip("distributed")
    path = write_spec(folder, outcomes=["y1"], formulas=FORMULAS[:3])
    marker = folder / "killed"

    def dies_once(job):  # the first job to start takes its worker process down with it
        if not marker.exists():
            marker.write_text(job.key)
            os._exit(1)
        return run_job(job)

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as client:
        summary = run(path, client=client, runner=dies_once)
    assert marker.exists() and summary.scheduled == 6 and not summary.failed
    results = read_results(folder / "results")
    assert set(results["key"]) == {job.key for job in load_spec(path).jobs}
    assert marker.read_text() in set(results["key"])


def test_a_failing_job_is_reported_and_the_others_finish(folder, capsys):
    pytest.importorskip("distributed")
    path = write_spec(folder, outcomes=["y1"], waves=None, formulas=["~ x + (1|g)", "~ x + (1|nosuch)", "~ (1|h)"])
    bad = next(job.key for job in load_spec(path).jobs if "nosuch" in job.formula)
    assert main(["batch", str(path), "--workers", "2", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert f"job {bad} failed" in err and "no column(s) ['nosuch']" in err
    assert "2 job(s) done, 1 failed" in err
    assert len(set(read_results(folder / "results")["key"])) == 2
    manifest = [json.loads(line) for line in (folder / "results" / "_manifest.jsonl").read_text().splitlines()]
    assert [(r["status"], "nosuch" in r["error"]) for r in manifest if r["key"] == bad] == [("failed", True)]
    # a rerun retries the failed job only
    again = run(path, backend="serial")
    assert (again.scheduled, again.skipped, list(again.failed)) == (1, 2, [bad])


def test_without_dask_the_jobs_run_in_local_processes(folder, monkeypatch, capsys):
    path = write_spec(folder, engine="glm", outcomes=["y2"], formulas=["~ x + factor(g)", "~ factor(h)"],
                      subsets={"all": None, "men": "x > 0"}, options={"by": ["h"]})
    serial = run(path, out=folder / "serial", backend="serial")
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed now fails
    summary = run(path, workers=2)
    assert "pip install 'misterp[dask]'" in capsys.readouterr().err
    assert summary.scheduled == serial.scheduled == 8 and not summary.failed
    local = read_results(folder / "results")
    pd.testing.assert_frame_equal(without_timing(local), without_timing(read_results(folder / "serial")))
    assert not local["worker"].str.startswith("tcp://").any()
    with pytest.raises(MisterpInputError, match="--scheduler needs Dask"):
        run(path, out=folder / "other", scheduler="tcp://127.0.0.1:1")


def test_the_jobs_notes_and_warnings_are_summed_up_on_the_terminal(folder, capsys):
    """Each job's notes stay in the manifest, and the terminal gets a digest of them."""
    path = write_spec(folder, outcomes=["y1"], waves=None, formulas=["~ x + (1|g)", "~ (1|h)"])
    summary = run(path, backend="serial")
    err = capsys.readouterr().err
    assert set(summary.notes) == set(summary.done) and len(summary.done) == 2
    # the model has no term for g in the second job: one note, counted over the jobs that gave it
    assert "note in 1 job(s): the model has no term for g" in err
    assert "note in 2 job(s): 600 respondents" not in err  # per-job counts differ: each is its own note
    assert batch.notes_digest({"k1": ["warning: singular"], "k2": ["warning: singular", "n"]})[0] == \
        "warning in 2 job(s) (k1, k2): singular"
