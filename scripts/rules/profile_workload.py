"""Rule profile_workload: per-request token counts and their statistics."""

import logging

from llm_energy.pipeline.io import write_json, write_parquet
from llm_energy.pipeline.rulekit import run_rule
from llm_energy.workloads.profile import load_trace, stats
from llm_energy.workloads.sources import check_sha256


def main(sm):
    spec = dict(sm.params.spec)
    if spec["kind"] == "task":
        from transformers import AutoTokenizer

        from llm_energy.models.build import check_model_dir
        from llm_energy.workloads.tasks import profile_task

        tokenizer = AutoTokenizer.from_pretrained(check_model_dir(sm.input.tokenizer))
        df, info = profile_task(spec["task"], sm.params.raw_path, tokenizer, spec["template"], spec["output_tokens"],
                                spec["n_examples"], spec["seed"])
        info["tokenizer"] = spec["tokenizer_model"]
    else:
        check_sha256(sm.params.raw_path, spec.get("sha256"))
        df, info = load_trace(sm.params.raw_path, spec)
    logging.getLogger("llm_energy").info("%s: %d requests profiled from %s; dropped: %s", sm.wildcards.workload,
                                         len(df), sm.params.raw_path, info.get("rows_dropped") or "none")
    write_parquet(df, sm.output.table)
    write_json({"workload": sm.wildcards.workload, "file": spec["file"], **stats(df, info)}, sm.output.stats)


if __name__ == "__main__":
    run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)
