# Energy cost of LLM inference: profile workloads, measure cells, estimate, regenerate the paper's figures.
# Usage: snakemake --cores all   (see README.md; measurement on GPUs: add --resources gpu=<n>)

from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


# `snakemake --report report.html`: this description, then every figure and table with its caption.
report: "workflow/report/workflow.rst"


include: "workflow/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/profile.smk"
include: "workflow/rules/measure.smk"
include: "workflow/rules/estimate.smk"
include: "workflow/rules/validate.smk"
include: "workflow/rules/paper.smk"
include: "workflow/rules/manifest.smk"


rule all:
    default_target: True
    input:
        all_targets(),


# At the end of a run, the first lines of its summary (rule summary: paper/summary.md); never fails the run.
onsuccess:
    try:
        from llm_energy.paper.summary import short_form

        _summary = short_form("paper/summary.md")
        if _summary:
            print(f"\n{_summary}\n", flush=True)
    # a summary that cannot be read must not fail a finished run
    except Exception as _err:
        print(f"(paper/summary.md not printed: {_err})")
