# Raw workload files: kept when already in data_dir, downloaded when absent. These rules only match
# files and folders that are absent when the workflow is parsed (PLAN.absent_files, PLAN.absent_folders in
# common.smk), so a file a user placed is never the output of a rule and never deleted by Snakemake.


localrules:
    fetch_raw,
    fetch_archive,


rule fetch_raw:
    output:
        f"{DATA_DIR}/{{filename}}",
    log:
        "logs/fetch/{filename}.log",
    benchmark:
        "results/benchmarks/fetch_raw/{filename}.tsv"
    priority: CHEAP_FIRST
    conda:
        "../../envs/analysis.yaml"
    params:
        url=raw_url,
        sha256=raw_sha256,
    script:
        "../../scripts/rules/fetch_raw.py"


# A folder taken from an archive (in part), complete or absent.
rule fetch_archive:
    output:
        directory(f"{DATA_DIR}/{{folder}}"),
    log:
        "logs/fetch/{folder}.log",
    benchmark:
        "results/benchmarks/fetch_archive/{folder}.tsv"
    priority: CHEAP_FIRST
    conda:
        "../../envs/analysis.yaml"
    params:
        spec=archive_spec,
    script:
        "../../scripts/rules/fetch_archive.py"
