"""Rule check_cell: mark every measurement row valid or invalid (with the reason)."""

import logging

import pandas as pd

from llm_energy.io import write_json, write_parquet
from llm_energy.rulekit import run_rule
from llm_energy.validation import check_measurements, enforce, summary


def main(sm):
    v = sm.params.validation
    checked = check_measurements(pd.read_parquet(sm.input[0]), min_window_s=v["min_window_s"], max_cv=v["max_cv"],
                                 min_power_coverage=v["min_power_coverage"],
                                 sample_interval_s=v["sample_interval_s"])
    enforce(checked, sm.input[0], v["fail_on_invalid"])
    s = summary(checked)
    logging.getLogger("llm_energy").info("%s: %d of %d rows invalid %s", sm.input[0], s["n_invalid_rows"],
                                         s["n_rows"], s["reasons"] or "")
    write_parquet(checked, sm.output.table)
    write_json(s, sm.output.summary)


if __name__ == "__main__":
    run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)
