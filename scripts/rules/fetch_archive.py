"""Rule fetch_archive: a data folder extracted (in part) from a .tar.gz, complete or absent."""

from pathlib import Path

from llm_energy import UserError
from llm_energy.data import fetch_archive
from llm_energy.io import write_text
from llm_energy.rulekit import run_rule


def main(sm):
    s = sm.params.spec
    marker = Path(sm.output[0])
    folder = fetch_archive(marker.parent / sm.wildcards.folder, s["url"], s["root"], list(s["include"]), s["sha256"])
    n_files = sum(1 for p in folder.rglob("*") if p.is_file())
    if n_files == 0:
        raise UserError(f"{folder} is empty: place the data there")
    write_text(f"{folder.name}: {n_files} files\n", marker)


if __name__ == "__main__":
    run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)
