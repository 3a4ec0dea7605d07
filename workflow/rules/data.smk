# Raw workload files: kept when already in data_dir, downloaded when absent.


localrules:
    fetch_raw,


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
