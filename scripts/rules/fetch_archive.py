"""Rule fetch_archive: a data folder extracted (in part) from a .tar.gz, complete or absent."""

from pathlib import Path

from llm_energy import UserError
from llm_energy.pipeline.rulekit import run_rule
from llm_energy.workloads.sources import fetch_archive


def main(sm):
    s = sm.params.spec
    folder = Path(sm.output[0])
    fetch_archive(folder, s["url"], s["root"], list(s["include"]), s["sha256"])
    if not any(p.is_file() for p in folder.rglob("*")):
        raise UserError(f"{folder} is empty: place the data there")


if __name__ == "__main__":
    run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)
