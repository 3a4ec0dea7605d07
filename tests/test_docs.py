"""The README and docs/ name only paths that exist, and the README stays a landing page."""

import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# What the repository ships: its tracked top-level entries.
TOP = {line.split("/")[0] for line in subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True,
                                                     check=True).stdout.splitlines()}
# Written by the pipeline or by the user, not shipped: never checked for existence.
GENERATED = ("results/", "data/", "models/", "logs/", "paper/figures/", "paper/tables/", "paper/main.pdf",
             "paper/findings", "paper/summary", ".venv", ".snakemake", "report.zip")


def named_paths(page: Path) -> set[str]:
    """Repository paths a page names: in backticks, as link targets, and the README's layout block."""
    text = page.read_text()
    found = set(re.findall(r"`([^`\s]+)`", text))
    links = set(re.findall(r"\]\(([^)#\s]+)\)", text))  # relative to the page
    found |= {os.path.normpath(page.parent.relative_to(REPO) / link) for link in links} if page.is_relative_to(REPO) \
        else links
    layout = re.search(r"## Layout\n+```\n(.*?)```", text, re.S)
    if layout:
        found |= {line.split()[0] for line in layout.group(1).splitlines() if line.strip()}
    paths = set()
    for token in found:
        token = token.rstrip(".,:;")
        if re.search(r"[<>{}*…$]|://", token) or token.startswith(GENERATED):
            continue
        rel = Path(token)
        if rel.parts and rel.parts[0] in TOP and ("/" in token or rel.suffix or rel.parts[0] in TOP):
            paths.add(str(rel))
    return paths


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_path_a_page_names_exists(page):
    paths = named_paths(page)
    missing = sorted(p for p in paths if not (REPO / p).exists())
    assert not missing, f"{page.name} names paths that do not exist: {missing}"


def test_the_readme_names_its_main_files_and_stays_short():
    readme = REPO / "README.md"
    assert len(readme.read_text().splitlines()) <= 150
    named = named_paths(readme)
    # the layout is complete: every top-level entry of the repository is in it
    layout = re.search(r"## Layout\n+```\n(.*?)```", readme.read_text(), re.S).group(1)
    listed = {line.split()[0].split("/")[0] for line in layout.splitlines() if line.strip()}
    assert TOP - {".gitignore", "README.md", "pyproject.toml"} <= listed, TOP - listed
    assert {"docs/configuration.md", "docs/contracts.md", "docs/method.md", "docs/scale-out.md",
            "docs/reproducibility.md", "docs/decisions.md"} <= named


def test_a_missing_path_is_caught(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("See `scripts/llm_energy/no_such_module.py` and `workflow/rules/data.smk`.\n")
    assert named_paths(page) >= {"scripts/llm_energy/no_such_module.py", "workflow/rules/data.smk"}


# A time a run or a test took, typed into prose: "18-19 minutes", "1,046 s in CI", "about 4 minutes
# more". Protocol settings ("0.5 s windows", "5 s windows") are configuration, not timings.
TIMING = re.compile(r"\b\d[\d,.]*(?:-\d[\d,.]*)?\s*(?:s|min|mins|minutes?|seconds?|hours?|h)\b(?!\s+windows)")


@pytest.mark.parametrize("page", [REPO / "README.md", REPO / "docs" / "testing.md"], ids=["README", "testing"])
def test_no_run_timing_is_typed_into_the_pages_people_read_first(page):
    """Timings of a run move by up to 2x from day to day on these machines: the pages say which
    command prints them (benchmarks/pipeline_profile.py, pytest --durations), never a figure."""
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    found = [m.group(0) for m in TIMING.finditer(text)]
    assert not found, f"{page.name} states timings by hand: {found}"
    if page.name == "README.md":
        assert "benchmarks/pipeline_profile.py" in text


def test_the_timing_pattern_catches_what_it_is_for():
    for typed in ("About 18-19 minutes on two CPU cores", "(1,046-1,141 s in the last CI runs)", "about 4 minutes more",
                  "443 tests in 61 s"):
        assert TIMING.search(typed), typed
    for setting in ("0.5 s windows instead of 5 s windows", "a 2-layer model", "batch 4"):
        assert not TIMING.search(setting), setting


def test_the_readme_shows_targets_kept_apart_from_configfile_and_run_sh_says_so_in_one_line(tmp_path):
    readme = (REPO / "README.md").read_text()
    assert re.search(r"snakemake --cores all --configfile \S+\.yaml -- results/\S+", readme)
    # run.sh checks --configfile's words before Snakemake (which would print a traceback) or any install
    for args, said in ((["--configfile", "missing.yaml"], "error: config file missing.yaml (given to --configfile) "
                                                          "not found"),
                       (["--configfile", str(tmp_path / "my.yaml"), "results/bins/w.parquet"],
                        "error: results/bins/w.parquet follows --configfile, which reads every word after it as a "
                        "config file: put targets after --")):
        (tmp_path / "my.yaml").write_text("{}\n")
        proc = subprocess.run(["bash", str(REPO / "scripts" / "run.sh"), "run", "-n", *args], cwd=tmp_path,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2 and proc.stderr.startswith(said) and proc.stderr.count("\n") == 1, proc.stderr
