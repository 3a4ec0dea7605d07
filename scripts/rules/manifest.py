"""Rule manifest: the provenance of this run's results (versions, git commit, hardware, config hash)."""

import logging

from llm_energy.pipeline.io import write_json
from llm_energy.pipeline.manifest import build_manifest
from llm_energy.pipeline.rulekit import run_rule


def main(sm):
    manifest = build_manifest(sm.params.config, sm.params.hardware, list(sm.input.measurements),
                              output_files=[sm.input.estimates])
    logging.getLogger("llm_energy").info("manifest: commit %s, config %s, hardware %s", manifest["git_commit"],
                                         manifest["config_sha256"][:12], manifest["hardware"]["in_results"])
    write_json(manifest, sm.output[0])


if __name__ == "__main__":
    run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)
