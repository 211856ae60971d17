"""The HTML report: one offline file, from a fit or a saved fit, opened in headless Chromium."""

import re
import shutil
import subprocess

import pytest

from conftest import CCES
from misterp.apps.cli import main
from misterp.apps.demo import article_report

CASE_STUDY = ("abortion ~ (1|state) + (1|eth) + (1|educ) + male + (1|male:eth) + (1|educ:age) + (1|educ:eth) "
              "+ repvote + factor(region)")


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """The demo's report and the CCES case study's (all rows), written by the command line."""
    folder = tmp_path_factory.mktemp("reports")
    demo, cces = folder / "demo.html", folder / "cces.html"
    assert main(["demo", "--html", str(demo)]) == 0
    assert main(["report", "--survey", str(CCES / "cces_all_clean.csv"), "--frame", str(CCES / "poststrat_df.csv"),
                 "--count", "n", "--join", str(CCES / "statelevel_predictors.csv"), "--by", "state",
                 "--formula", CASE_STUDY, "--html", str(cces), "--save-fit", str(folder / "cces.fit"),
                 "--out", str(folder / "cces.csv")]) == 0
    return {"demo": demo, "cces": cces, "folder": folder}


def test_reports_are_self_contained_with_their_figures(reports):
    demo, cces = reports["demo"].read_text(), reports["cces"].read_text()
    assert len(re.findall("<img", demo)) >= 4 and len(re.findall("<img", cces)) >= 5
    for page in (demo, cces):
        text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page)  # base64 can spell anything
        assert not re.search(r"(src|href)=\"(?!data:)", page) and "http" not in text.lower()
        for section in ("<h2>Model</h2>", "<h2>Estimates</h2>", '<table class="sortable">'):
            assert section in page
    assert reports["cces"].stat().st_size < 3e6
    assert "Generalized linear mixed model fit by maximum likelihood" in demo


def test_a_saved_fit_is_reported_without_refitting(reports, capsys):
    out = reports["folder"] / "again.html"
    assert main(["report", "--fit", str(reports["folder"] / "cces.fit"), "--frame", str(CCES / "poststrat_df.csv"),
                 "--count", "n", "--join", str(CCES / "statelevel_predictors.csv"), "--by", "state",
                 "--html", str(out)]) == 0
    assert len(re.findall("<img", out.read_text())) >= 4
    assert main(["report", "--frame", str(CCES / "poststrat_df.csv"), "--count", "n", "--html", str(out)]) == 2
    assert "needs --survey and --formula" in capsys.readouterr().err


def test_article_report_is_the_demos():
    page = article_report()
    assert "MRP example" in page and "0.426087" in page


BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")
CHECK = """<script>window.addEventListener("load", () => {
  const images = Array.from(document.images);
  document.title = "images " + images.filter(i => i.complete && i.naturalWidth > 0).length + "/" + images.length;
});</script>"""


@pytest.mark.skipif(BROWSER is None, reason="Chromium is not installed (Debian: apt-get install chromium); "
                                            "the browser test of the HTML reports is skipped")
@pytest.mark.parametrize("name", ["demo", "cces"])
def test_reports_render_in_headless_chromium(reports, name, tmp_path):
    """Every image decodes and loads, the console shows no errors, and a screenshot is taken."""
    page = tmp_path / f"{name}.html"
    page.write_text(reports[name].read_text().replace("</body>", CHECK + "</body>"))
    flags = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
             "--virtual-time-budget=5000"]
    dom = subprocess.run(flags + ["--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    loaded, total = map(int, re.search(r"<title>images (\d+)/(\d+)</title>", dom.stdout).groups())
    assert total >= (4 if name == "demo" else 5) and loaded == total
    assert not re.search(r"CONSOLE.*(Uncaught|Error)", dom.stderr)
    shot = tmp_path / f"{name}.png"
    subprocess.run(flags + [f"--screenshot={shot}", "--window-size=1200,4000", page.as_uri()], capture_output=True,
                   timeout=120)
    assert shot.stat().st_size > 50_000


def test_bootstrap_fits_and_empty_groups_are_reported(tmp_path):
    """A bootstrap fit has a summary; an empty first group is not the one whose draws are drawn."""
    import pandas as pd

    from misterp import Frame, LaplaceEngine, Survey, bootstrap, cell_draws, poststratify, prepare
    from misterp.report.html import html_report

    survey = Survey(pd.read_csv(CCES.parent.parent / "reference" / "seed_survey.csv"), "response")
    frame = Frame(pd.DataFrame({"class": [1, 2, 3, 4, 5], "N": [0, 4000, 4000, 4000, 7000]}), "N")
    fit = LaplaceEngine().fit(prepare(survey, frame, "response ~ (1|class)")[0])
    boot = bootstrap(fit, nsim=20, seed=1, progress=False)
    estimate = poststratify(cell_draws(boot, frame), frame, by="class")
    page = html_report(estimate, boot, survey, frame)
    assert "Parametric bootstrap (bootMer, use.u = True): 20 refits" in page
    assert len(re.findall("<img", page)) >= 4


def test_sortable_cells_carry_their_raw_values():
    import pandas as pd

    from misterp.report.html import _table

    html_table = _table(pd.DataFrame({"population": [3671705.0, 25.0], "state": ["AL", "CA"]}))
    assert 'data-sort="3671705.0">3,671,705</td>' in html_table and 'data-sort="CA"' in html_table
