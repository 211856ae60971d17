"""Survey and Frame are plain values; the readers read, recode and join; a CSV frame read in chunks is
the whole reader's frame, with its checks and errors."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from misterp import Frame, MisterpInputError, Survey, read_frame, read_survey
from misterp.data.checks import check_fixed_levels, check_frame_cells, coverage, match_cells
from misterp.data.frame import FrameChunks


def test_replace_makes_a_new_value_without_reading_or_joining_again(tmp_path):
    path = tmp_path / "frame.csv"
    pd.DataFrame({"state": ["AK", "AL"], "N": [5, 7]}).to_csv(path, index=False)
    frame = read_frame(path, "N", join=pd.DataFrame({"state": ["AL", "AK"], "repvote": [0.6, 0.5]}))
    doubled = dataclasses.replace(frame, data=frame.data.assign(N=frame.data["N"] * 2))
    assert doubled.counts.tolist() == [10.0, 14.0] and doubled.data["repvote"].tolist() == [0.5, 0.6]
    survey = read_survey(pd.DataFrame({"y": [1, 0], "age": ["18-24", "65-74"]}), "y",
                         recode={"age": {"18-24": "18-29", "65-74": "65+"}})
    assert dataclasses.replace(survey, outcome="y").data["age"].tolist() == ["18-29", "65+"]


@pytest.mark.parametrize("make", [lambda p: Survey(p, "y"), lambda p: Frame(p, "N")])
def test_a_path_is_for_the_readers(tmp_path, make):
    with pytest.raises(MisterpInputError, match=r"takes a DataFrame, not PosixPath; read a CSV or Parquet file "
                                                r"with misterp\.read_(survey|frame)"):
        make(tmp_path / "table.csv")


def test_values_are_still_checked_when_made():
    with pytest.raises(MisterpInputError, match="finite numbers >= 0"):
        Frame(pd.DataFrame({"g": ["a"], "N": [-1]}), "N")
    with pytest.raises(MisterpInputError, match="weight column 'w' must be positive"):
        Survey(pd.DataFrame({"y": [1], "w": [0.0]}), "y", weights="w")


def test_the_readers_copy_a_dataframe():
    data = pd.DataFrame({"y": [1, 0], "g": ["a", "b"]})
    survey = read_survey(data, "y")
    data.loc[0, "g"] = "z"
    assert survey.data["g"].tolist() == ["a", "b"]


def test_checks_name_the_cells():
    frame = Frame(pd.DataFrame({"g": ["a", "b", "c"], "x": ["u", "u", "v"], "N": [1, 2, 3]}), "N")
    survey_cells = pd.DataFrame({"g": ["a", "b"], "x": ["u", "u"]})
    assert coverage(survey_cells, frame, ["g"]) == {"frame_cells": 3, "with_respondents": 2, "without_respondents": 1,
                                                    "population_without_respondents": 3.0}
    with pytest.raises(MisterpInputError, match=r"Column 'x' has level\(s\) \['v'\] that the survey never has"):
        check_fixed_levels(survey_cells, frame, ["x"])
    with pytest.raises(MisterpInputError, match=r"cells such as \[\{'g': 'c'\}\] have none"):
        match_cells(survey_cells, frame, ["g"])
    with pytest.raises(MisterpInputError, match="has no column"):
        check_frame_cells(frame, ["state"])


def test_unseen_fixed_level_is_found_before_fitting(article_survey):
    """A frame level of a fixed factor that the survey lacks stops prepare(), not the prediction after the fit."""
    from misterp import prepare

    frame = Frame(pd.DataFrame({"class": [1, 2, 3, 4, 5, 6], "N": [1, 1, 1, 1, 1, 1]}), "N")
    with pytest.raises(MisterpInputError, match=r"Column 'class' has level\(s\) \['6'\] that the survey never has"):
        prepare(Survey(article_survey, "response"), frame, "response ~ factor(class)")


# -- a CSV frame read in chunks: the whole reader's frame, checks and errors ------------------------------

def _frame_text(rows=300, seed=0):
    """A frame as CSV text: labels with spaces and a quoted comma, integer and float columns."""
    rng = np.random.default_rng(seed)
    table = pd.DataFrame({"g": rng.choice([" a", "b ", "c, d", "é"], rows), "cell": np.arange(rows),
                          "x": rng.normal(size=rows).round(6), "N": rng.integers(0, 50, rows)})
    return table.to_csv(index=False)


def _with_line(text: str, line: int, replace) -> str:
    """``text`` with its 1-based ``line`` replaced by ``replace(line_text)``."""
    lines = text.splitlines()
    lines[line - 1] = replace(lines[line - 1])
    return "\n".join(lines) + "\n"


def test_a_csv_frame_in_chunks_is_the_whole_frame(tmp_path):
    path = tmp_path / "frame.csv"
    path.write_text(_frame_text(), encoding="utf-8")
    chunks = FrameChunks(path, "N", rows=70)
    parts = [f.data for f in chunks]
    assert [len(p) for p in parts] == [70, 70, 70, 70, 20] and chunks.n_rows == 300
    assert parts[3].index[0] == 210  # each chunk keeps the file's row numbers
    pd.testing.assert_frame_equal(pd.concat(parts), read_frame(path, "N").data)
    assert set(parts[0]["g"]) <= {"a", "b", "c, d", "é"}  # stripped, as the whole reader strips them


def _last_field(value):
    return lambda line: line.rsplit(",", 1)[0] + "," + value


DEFECTS = {  # a defect on line 260, in the fourth chunk of 70 rows: (change, fragment of the error)
    "negative count": (_last_field("-3"), "rows 260 of the file hold ['-3']"),
    "count that is no number": (_last_field("x"), "rows 260 of the file hold ['x']"),
    "row too long": (lambda line: line + ",7", "line 260 has 5"),
    "row too short": (lambda line: line.rsplit(",", 1)[0], "line 260 has 3"),
    "unclosed quote": (lambda line: '"' + line, "differs from its header's 4"),
}


@pytest.mark.parametrize("defect", DEFECTS)
def test_a_defect_past_the_first_chunk_is_the_whole_readers_error(tmp_path, defect):
    change, fragment = DEFECTS[defect]
    path = tmp_path / "frame.csv"
    path.write_text(_with_line(_frame_text(), 260, change), encoding="utf-8")
    with pytest.raises(MisterpInputError) as whole:
        read_frame(path, "N")
    with pytest.raises(MisterpInputError) as streamed:
        list(FrameChunks(path, "N", rows=70))
    assert fragment in str(whole.value)
    assert str(streamed.value) == str(whole.value)


@pytest.mark.parametrize("text, fragment", [
    (_frame_text().replace(",", ";"), "looks semicolon-separated"),
    ("g,cell,x,N\n", "The frame has no rows"),
    ("", "No columns to parse"),
    (_frame_text().replace("cell,x,N", "cell,x,n", 1), "no column(s) ['N']"),
])
def test_the_first_chunks_errors_are_the_whole_readers(tmp_path, text, fragment):
    path = tmp_path / "frame.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(MisterpInputError) as whole:
        read_frame(path, "N")
    with pytest.raises(MisterpInputError) as streamed:
        list(FrameChunks(path, "N", rows=70))
    assert fragment in str(whole.value) and str(streamed.value) == str(whole.value)


def test_text_that_is_not_utf8_past_the_first_chunk_is_refused(tmp_path):
    path = tmp_path / "frame.csv"
    path.write_bytes(_with_line(_frame_text(), 260, lambda line: "\u00e9" + line).encode("utf-8")
                     .replace("\u00e9".encode("utf-8"), "\u00e9".encode("latin-1")))
    with pytest.raises(MisterpInputError, match="is not UTF-8 text .*'CSV UTF-8'"):
        list(FrameChunks(path, "N", rows=70))


def test_frame_checks_name_the_files_rows_in_any_chunk():
    """Missing labels and repeated cells in a later chunk: the file's row numbers, as the whole frame's."""
    data = pd.DataFrame({"g": list("abcdefghij") * 3, "h": np.repeat([1, 2, 3], 10), "N": 1})
    missing = data.assign(g=data["g"].where(data.index != 24))
    whole = pytest.raises(MisterpInputError, check_frame_cells, Frame(missing, "N"), ["g"])
    chunk = [f for f in FrameChunks(missing, "N", rows=10)][2]
    streamed = pytest.raises(MisterpInputError, check_frame_cells, chunk, ["g"])
    assert "file rows 26." in str(whole.value) and str(streamed.value) == str(whole.value)
    repeated = data.copy()
    repeated.loc[26, ["g", "h"]] = repeated.loc[25, ["g", "h"]].to_numpy()
    whole = pytest.raises(MisterpInputError, check_frame_cells, Frame(repeated, "N"), ["g"])
    chunk = [f for f in FrameChunks(repeated, "N", rows=10)][2]
    streamed = pytest.raises(MisterpInputError, check_frame_cells, chunk, ["g"])
    assert "(file rows 27, 28)" in str(whole.value) and str(streamed.value) == str(whole.value)


def test_a_csv_frame_is_read_chunk_by_chunk_not_whole(tmp_path):
    """The first chunk comes before the reader reaches a defect at the end (a whole read would stop first)."""
    path = tmp_path / "frame.csv"
    path.write_text(_with_line(_frame_text(), 301, lambda line: line + ",7"), encoding="utf-8")
    chunks = iter(FrameChunks(path, "N", rows=70))
    assert len(next(chunks).data) == 70
    with pytest.raises(MisterpInputError, match="line 301 has 5"):
        list(chunks)
