# Raw workload files: kept when already in data_dir, downloaded when absent.


localrules:
    fetch_raw,
    fetch_archive,


rule fetch_raw:
    output:
        f"{DATA_DIR}/{{filename}}",
    log:
        "logs/fetch/{filename}.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        url=raw_url,
        sha256=raw_sha256,
    script:
        "../../scripts/rules/fetch_raw.py"


# A folder taken from an archive. Its output is a marker beside it, not the folder itself, so that a
# folder placed by hand (or linked in) is never deleted by Snakemake before the rule runs.
rule fetch_archive:
    output:
        f"{DATA_DIR}/.{{folder}}.ready",
    log:
        "logs/fetch/{folder}.log",
    conda:
        "../../envs/analysis.yaml"
    params:
        spec=archive_spec,
    script:
        "../../scripts/rules/fetch_archive.py"
