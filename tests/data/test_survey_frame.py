"""Survey and Frame are plain values; the readers read, recode and join."""

import dataclasses

import pandas as pd
import pytest

from misterp import Frame, MisterpInputError, Survey, read_frame, read_survey
from misterp.data.checks import check_fixed_levels, check_frame_cells, coverage, match_cells


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
