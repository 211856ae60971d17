"""Recoding survey answers onto census categories, and coverage."""

import numpy as np
import pandas as pd
import pytest

from misterp import Frame, MisterpInputError, prepare, read_survey
from misterp.apps.cli import main
from misterp.data.harmonise import load_mapping, recode
from misterp.model.cells import frame_coverage

SURVEY_AGES = ["18-24", "25-29", "30-39", "40-49", "50-64", "65-74", "75+"]
MAPPING = {
    "age": {"18-24": "18-29", "25-29": "18-29", "30-39": "30-44", "40-49": "30-44",
            "50-64": "45-64", "65-74": "65+", "75+": "65+"},
    "eth": {"Asian": "Other", "Mixed": "Other"},
}


@pytest.fixture()
def survey_frame():
    rng = np.random.default_rng(3)
    n = 600
    survey = pd.DataFrame({"y": rng.integers(0, 2, n), "age": rng.choice(SURVEY_AGES, n),
                           "eth": rng.choice(["White", "Black", "Asian", "Mixed"], n)})
    frame = pd.DataFrame([(a, e) for a in ["18-29", "30-44", "45-64", "65+"]
                          for e in ["White", "Black", "Hispanic", "Other"]], columns=["age", "eth"])
    frame["N"] = np.arange(1, len(frame) + 1) * 100
    return survey, frame


def test_dict_yaml_and_csv_mappings_agree(tmp_path, survey_frame):
    survey, _ = survey_frame
    yaml_file = tmp_path / "map.yaml"
    yaml_file.write_text("age:\n" + "".join(f"  '{k}': '{v}'\n" for k, v in MAPPING["age"].items())
                         + "eth:\n  Asian: Other\n  Mixed: Other\n")
    csv_file = tmp_path / "map.csv"
    pd.DataFrame([(c, k, v) for c, t in MAPPING.items() for k, v in t.items()],
                 columns=["column", "from", "to"]).to_csv(csv_file, index=False)
    assert load_mapping(yaml_file) == load_mapping(csv_file) == MAPPING
    recoded = recode(survey, yaml_file)
    assert sorted(recoded["age"].unique()) == ["18-29", "30-44", "45-64", "65+"]
    assert sorted(recoded["eth"].unique()) == ["Black", "Other", "White"]
    assert len(recoded) == len(survey)


def test_coverage_counts_empty_frame_cells(survey_frame):
    survey, frame = survey_frame
    cells, _ = prepare(read_survey(survey, "y", recode=MAPPING), Frame(frame, "N"), "y ~ (1|age) + (1|eth)")
    cover = frame_coverage(cells, Frame(frame, "N"))
    # no survey respondent is Hispanic: those 4 frame cells are predicted by the model
    assert cover["frame_cells"] == 16 and cover["without_respondents"] == 4
    assert cover["population_without_respondents"] == frame.loc[frame["eth"] == "Hispanic", "N"].sum()


def test_unmapped_level_is_named(survey_frame):
    survey, frame = survey_frame
    partial = {"age": MAPPING["age"]}  # eth not mapped: Asian and Mixed are not frame categories
    with pytest.raises(MisterpInputError, match=r"Survey column 'eth' has level\(s\) \['Asian', 'Mixed'\]"):
        prepare(read_survey(survey, "y", recode=partial), Frame(frame, "N"), "y ~ (1|age) + (1|eth)")


def test_mapping_errors():
    with pytest.raises(MisterpInputError, match="recodes column 'agegroup'"):
        recode(pd.DataFrame({"age": ["1"]}), {"agegroup": {"1": "2"}})
    with pytest.raises(MisterpInputError, match="for each column, a table"):
        load_mapping({"age": ["18-29"]})


def test_cli_map_and_coverage_note(tmp_path, survey_frame, capsys):
    survey, frame = survey_frame
    (tmp_path / "s.csv").write_text(survey.to_csv(index=False))
    (tmp_path / "f.csv").write_text(frame.to_csv(index=False))
    pd.DataFrame([(c, k, v) for c, t in MAPPING.items() for k, v in t.items()],
                 columns=["column", "from", "to"]).to_csv(tmp_path / "m.csv", index=False)
    code = main(["fit", "--survey", str(tmp_path / "s.csv"), "--frame", str(tmp_path / "f.csv"), "--count", "N",
                 "--formula", "y ~ (1|age) + (1|eth)", "--map", str(tmp_path / "m.csv"), "--by", "eth"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "4 of them without respondents" in err
    assert "Hispanic" in out
