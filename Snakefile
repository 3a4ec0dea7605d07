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
