"""Reliability cases: the mistakes and accidents of real users, tried on a finished small pipeline run.

Each case works in its own copy of one finished run (one transformers cell measured here, one cell
copied in from another machine, the shared data linked into data/raw as an offline user places it)
and reports what was tried, the line the user saw, whether a traceback showed anywhere (terminal or
log files), and which files were lost: a raw file or a merged measurement that changed or
disappeared, or any earlier result that is gone afterwards.

``tests/test_reliability.py`` asserts every case; ``benchmarks/reliability.py`` prints the table.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "scripts"))

import shared_data  # noqa: E402
from pipeline_configs import ONE_CELL, snakemake_cores  # noqa: E402

OTHER_HW = "h100-copied"  # the hardware of the measurement file copied in from "another machine"
CELL = "m1/transformers-eager/greedy.parquet"
TRACEBACK = "Traceback (most recent call last)"

CONFIG = ONE_CELL


@dataclass
class Outcome:
    rc: int
    text: str  # everything the user saw: stdout and stderr


@dataclass
class Case:
    name: str  # what was tried
    action: Callable[[Path], Outcome]
    expect: str  # a piece of the line the user must see
    ok: bool = False  # whether the command should succeed
    touches: tuple[str, ...] = ()  # files the case itself changes (not counted as lost)
    check: Callable[[Path], str] | None = None  # content checked afterwards: "" when right, else what is wrong


@dataclass
class Result:
    case: Case
    rc: int
    line: str
    traceback: bool
    lost: list[str] = field(default_factory=list)
    seconds: float = 0.0
    wrong: str = ""  # what the content check found wrong

    @property
    def passed(self) -> bool:
        return (not self.traceback and not self.lost and not self.wrong and self.case.expect in self.line
                and (self.rc == 0) == self.case.ok)


# --- running things as a user does ----------------------------------------------------------------

def env(d: Path) -> dict:
    """The workflow copy's own package first on the path (as in a checkout), so that its modules can be
    edited the way a user edits them."""
    return {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "PYTHONPATH": str(d / "scripts")}


def run(cmd: list[str], cwd: Path, timeout: int = 600, own_package: bool = True) -> Outcome:
    """``own_package``: the copy's package first on the path (else the installed one, this checkout's)."""
    environment = env(cwd) if own_package else {k: v for k, v in env(cwd).items() if k != "PYTHONPATH"}
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=environment)
    return Outcome(proc.returncode, proc.stdout + proc.stderr)


def snakemake(d: Path, *args: str) -> Outcome:
    return run([sys.executable, "-m", "snakemake", "--cores", snakemake_cores(), *args], d)


def cli(d: Path, *args: str) -> Outcome:
    return run([sys.executable, "-m", "llm_energy", *args], d)


def make_workflow(dest: Path, config: dict = CONFIG) -> Path:
    """A copy of the workflow (Snakefile, workflow/, scripts/ with the package, envs, main.tex) with a
    config and the shared data linked in, like a checkout; run.sh finds the installed .venv."""
    dest.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    # No pyproject.toml: run.sh then never reinstalls into the shared .venv from this copy (its stamp
    # counts as newer than a missing file), which would point the editable install at a temporary folder.
    shutil.copy2(REPO / "Snakefile", dest / "Snakefile")
    for folder in ("workflow", "envs", "scripts/rules", "scripts/llm_energy"):
        shutil.copytree(REPO / folder, dest / folder, ignore=ignore)
    shutil.copy2(REPO / "scripts" / "run.sh", dest / "scripts" / "run.sh")
    (dest / "paper").mkdir(exist_ok=True)
    shutil.copy2(REPO / "paper" / "main.tex", dest / "paper" / "main.tex")
    (dest / ".venv").symlink_to(Path(sys.executable).parents[1])  # run.sh finds the installed .venv
    (dest / "config.yaml").write_text(yaml.safe_dump(config))
    shared_data.link_raw(dest / "data" / "raw")
    return dest


def one_cell_run(dest: Path) -> Path:
    """The small pipeline (``CONFIG``: one transformers cell, one trace) run to the end in a workflow copy,
    with the installed package (the same code as the copy's), so that its manifest records this
    checkout's git commit."""
    d = make_workflow(dest)
    out = run([sys.executable, "-m", "snakemake", "--cores", snakemake_cores()], d, own_package=False)
    assert out.rc == 0, out.text[-4000:]
    return d


@dataclass
class Merged:
    """A finished run with another hardware's measurement merged in, and what the user saw doing it."""
    path: Path
    dry_run: Outcome  # ``snakemake -n`` right after the file was copied in
    run: Outcome  # the run that merged it


def merge_run(dest: Path, base: Path | None = None) -> Merged:
    """The small pipeline run (a copy of ``base``, a finished :func:`one_cell_run`, when given), then its
    measurement copied in as another hardware's (half the energy), planned (``-n``) and merged."""
    if base is None:
        d = one_cell_run(dest)
    else:
        d = dest
        shutil.copytree(base, d, symlinks=True)  # mtimes kept: the copy is as finished as its source
    (here,) = os.listdir(d / "results" / "measurements")
    src = pd.read_parquet(d / "results" / "measurements" / here / CELL)
    merged = d / "results" / "measurements" / OTHER_HW / CELL
    merged.parent.mkdir(parents=True)
    src.assign(hardware=OTHER_HW, energy_j=src["energy_j"] / 2, prefill_energy_j=src["prefill_energy_j"] / 2,
               decode_energy_j=src["decode_energy_j"] / 2).to_parquet(merged, index=False)
    dry = snakemake(d, "-n")
    out = snakemake(d)
    assert out.rc == 0, out.text[-4000:]
    return Merged(d, dry, out)


def finished_run(dest: Path, base: Path | None = None) -> Path:
    """:func:`merge_run`'s folder."""
    return merge_run(dest, base).path


def this_hw(d: Path) -> str:
    return next(p.name for p in (d / "results" / "measurements").iterdir() if p.name != OTHER_HW)


# --- what counts as lost ------------------------------------------------------------------------

def _digest(p: Path) -> str:
    if p.is_dir():
        return "dir:" + ",".join(sorted(x.name for x in p.iterdir()))
    return hashlib.sha256(p.read_bytes()).hexdigest()


def snapshot(d: Path) -> tuple[dict[str, str], set[str]]:
    """(what the user placed or copied in -> its content digest, every result file)."""
    placed = {}
    for p in sorted((d / "data" / "raw").iterdir()):
        placed[str(p.relative_to(d))] = _digest(p) if p.exists() else "broken link"
    for p in sorted((d / "results" / "measurements" / OTHER_HW).rglob("*.parquet")):
        placed[str(p.relative_to(d))] = _digest(p)
    results = {str(p.relative_to(d)) for top in ("results", "paper", "models") for p in (d / top).rglob("*")
               if p.is_file()}
    return placed, results


def _touched(rel: str, touches: tuple[str, ...]) -> bool:
    """Whether a file is one the case changes itself: a path, or everything under ``folder/*``."""
    return any(rel == t or (t.endswith("/*") and rel.startswith(t[:-1])) for t in touches)


def lost_files(d: Path, before: tuple[dict[str, str], set[str]], touches: tuple[str, ...]) -> list[str]:
    placed, results = before
    lost = []
    for rel, digest in placed.items():
        p = d / rel
        if _touched(rel, touches):
            continue
        if not (p.exists() or p.is_symlink()) or (_digest(p) if p.exists() else "broken link") != digest:
            lost.append(rel)
    lost += sorted(rel for rel in results - set(placed) if not _touched(rel, touches) and not (d / rel).exists())
    return lost


def user_line(text: str, expect: str) -> str:
    """The line of the output that says what happened: the one with the expected words, else the last
    error line, else the last line."""
    lines = [re.sub(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ ", "", line.strip())
             for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if re.search(r"\berror\b|Exception|WARNING", line, re.IGNORECASE)]
    for pool in (errors, lines):
        matching = [line for line in pool if expect and expect in line]
        if matching:
            return matching[-1]
    return (errors or lines or [""])[-1]


def logs_text(d: Path, since: float) -> str:
    return "\n".join(p.read_text(errors="replace") for p in (d / "logs").rglob("*.log")
                     if p.stat().st_mtime >= since) if (d / "logs").is_dir() else ""


def try_case(case: Case, base: Path, scratch: Path) -> Result:
    d = scratch / re.sub(r"[^a-z0-9]+", "-", case.name.lower())[:60]
    shutil.copytree(base, d, symlinks=True)
    before = snapshot(d)
    touches = tuple(t.replace("{hw}", this_hw(base)) for t in case.touches)
    start = time.time()
    out = case.action(d)
    seen = out.text + "\n" + logs_text(d, start - 1)
    seconds = time.time() - start
    return Result(case, out.rc, user_line(out.text, case.expect), TRACEBACK in seen,
                  lost_files(d, before, touches), seconds, case.check(d) if case.check else "")


# --- the cases ------------------------------------------------------------------------------------

def _merged(d: Path) -> Path:
    return d / "results" / "measurements" / OTHER_HW / CELL


def _replace_raw(d: Path, name: str, content: bytes | str) -> None:
    """Replace a linked raw file by a file of the user's (the shared original is read-only)."""
    p = d / "data" / "raw" / name
    p.unlink()
    p.write_bytes(content if isinstance(content, bytes) else content.encode())


def _set_config(d: Path, **changes) -> None:
    cfg = yaml.safe_load((d / "config.yaml").read_text())
    for dotted, value in changes.items():
        node = cfg
        *parents, last = dotted.split("__")
        for k in parents:
            node = node[k]
        node[last] = value
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))


def c_forcerun_measure(d):
    return snakemake(d, "--forcerun", "measure_cell")


def c_forceall(d):
    return snakemake(d, "-F")


def c_force_merged(d):
    return snakemake(d, "--force", f"results/measurements/{OTHER_HW}/{CELL}")


def c_forcerun_fetch(d):
    return snakemake(d, "--forcerun", "fetch_raw", "fetch_archive", "-n")


def c_placed_raw_after_code_change(d):
    (d / "scripts" / "rules" / "fetch_raw.py").touch()  # "Code has changed since last execution"
    return snakemake(d)


def c_other_hw_target(d):
    return snakemake(d, f"results/measurements/a100-sxm4-80gb/{CELL}")


def _planned(d: Path, rule: str) -> Outcome:
    out = snakemake(d, "-n")
    planned = re.findall(r"^rule (\w+):", out.text, re.MULTILINE)
    return Outcome(out.rc, out.text + f"\nplanned: {', '.join(sorted(set(planned)))}"
                   + (f"\n{rule} re-planned" if rule in planned else f"\n{rule} NOT planned"))


def c_deleted_measurement(d):
    (d / "results" / "measurements" / this_hw(d) / CELL).unlink()
    return _planned(d, "measure_cell")


def c_deleted_profile(d):
    (d / "results" / "profile" / "burstgpt.parquet").unlink()
    return _planned(d, "profile_workload")


def c_deleted_model(d):
    shutil.rmtree(d / "models" / "m1")
    return _planned(d, "build_model")


def c_moved_checkout(d):
    out = snakemake(d, "-n")  # the case's folder is a copy of the run: a moved checkout
    return Outcome(out.rc, out.text)


def c_tp2_without_gpus(d):
    _set_config(d, cells=[{"model": "m1", "variants": ["transformers-eager", "vllm-eager-tp2"]}])
    return snakemake(d, "-n")


def c_tp2_check_config(d):
    _set_config(d, cells=[{"model": "m1", "variants": ["vllm-eager-tp2"]}])
    return cli(d, "check-config")


def c_wrong_config_key(d):
    _set_config(d, measurement__repeat=3)
    return snakemake(d, "-n")


def c_broken_link(d):
    p = d / "data" / "raw" / "burstgpt_slice.csv"
    p.unlink()
    p.symlink_to(d / "nowhere" / "burstgpt_slice.csv")
    return snakemake(d)


def c_merged_random_bytes(d):
    _merged(d).write_bytes(os.urandom(4096))
    return snakemake(d)


def c_merged_no_energy(d):
    df = pd.read_parquet(_merged(d)).drop(columns=["energy_j"])
    df.to_parquet(_merged(d), index=False)
    return snakemake(d)


def c_merged_all_invalid(d):
    df = pd.read_parquet(_merged(d))
    df.assign(energy_j=-1.0).to_parquet(_merged(d), index=False)
    return snakemake(d)


def c_merged_wrong_folder(d):
    df = pd.read_parquet(_merged(d))
    df.assign(hardware="a100-sxm4-80gb").to_parquet(_merged(d), index=False)
    return snakemake(d)


def c_truncated_trace(d):
    text = (d / "data" / "raw" / "burstgpt_slice.csv").read_text()
    _replace_raw(d, "burstgpt_slice.csv", text[: len(text) // 2].rstrip("\n")[:-1])
    _set_config(d, workloads__burstgpt__sha256=None)
    return snakemake(d)


def _edit_trace(d: Path, column: str, value) -> Outcome:
    df = pd.read_csv(d / "data" / "raw" / "burstgpt_slice.csv")
    df[column] = df[column].astype(object)
    df.loc[5, column] = value
    _replace_raw(d, "burstgpt_slice.csv", df.to_csv(index=False))
    _set_config(d, workloads__burstgpt__sha256=None)
    return snakemake(d)


def c_fractional_tokens(d):
    return _edit_trace(d, "Request tokens", 12.5)


def c_absurd_tokens(d):
    return _edit_trace(d, "Response tokens", 10**12)


def c_negative_tokens(d):
    return _edit_trace(d, "Request tokens", -3)


def c_missing_column(d):
    _set_config(d, workloads__burstgpt__input_column="Prompt tokens", workloads__burstgpt__sha256=None)
    return snakemake(d)


def c_changed_trace_sha(d):
    text = (d / "data" / "raw" / "burstgpt_slice.csv").read_text()
    _replace_raw(d, "burstgpt_slice.csv", text + text.splitlines()[-1] + "\n")
    return snakemake(d)


def c_corrupt_model_config_measure(d):
    cfg = d / "models" / "m1" / "config.json"
    cfg.write_text(cfg.read_text()[:40])
    return cli(d, "measure", "--model", "m1", "--variant", "transformers-eager", "--out", "elsewhere.parquet")


def c_corrupt_model_config_flops(d):
    cfg = d / "models" / "m1" / "config.json"
    cfg.write_text(cfg.read_text()[:40])
    return cli(d, "flops", "--model-config", "models/m1/config.json", "--input-len", "8", "--output-len", "8")


def c_model_without_tokenizer(d):
    for p in (d / "models" / "m1").glob("tokenizer*"):
        p.unlink()
    return cli(d, "measure", "--model", "m1", "--variant", "transformers-eager", "--out", "elsewhere.parquet")


def c_bad_prompt_book(d):
    _replace_raw(d, "pg19_sample.json", b"\x00\x01 not a book")
    return cli(d, "measure", "--model", "m1", "--variant", "transformers-eager", "--out", "elsewhere.parquet")


def c_measure_cli_over_pipeline_file(d):
    return cli(d, "measure", "--model", "m1", "--variant", "transformers-eager")


def c_flops_negative(d):
    return cli(d, "flops", "--model-config", "models/m1/config.json", "--input-len", "-5", "--output-len", "8")


def c_flops_batch_zero(d):
    return cli(d, "flops", "--model-config", "models/m1/config.json", "--input-len", "8", "--output-len", "8",
               "--batch", "0")


def c_stale_lock(d):
    """kill -9 of the whole run (Snakemake and its job) while a cell is measured, then the README's
    command again."""
    shutil.rmtree(d / "results" / "measurements" / this_hw(d))
    proc = subprocess.Popen(["bash", "scripts/run.sh"], cwd=d, env=env(d), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.time() + 120
    for line in proc.stdout:
        if "rule measure_cell" in line or time.time() > deadline:
            break
    time.sleep(3)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (d / ".snakemake" / "locks").is_dir() and any((d / ".snakemake" / "locks").iterdir()), \
        "the killed run left no lock: the case tests nothing"
    return run(["bash", "scripts/run.sh"], d)


def c_busy_lock(d):
    (d / ".snakemake" / "locks").mkdir(parents=True, exist_ok=True)
    (d / ".snakemake" / "locks" / "0.input.lock").write_text("x")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "snakemake-job-stand-in"],
                               cwd=d)
    try:
        return run(["bash", "scripts/run.sh"], d)
    finally:
        sleeper.kill()
        sleeper.wait()


def c_umask(d):
    code = ("import os; os.umask(0o002); from llm_energy.pipeline.io import write_text; "
            "write_text('x', 'results/u.txt'); "
            "print(oct(os.stat('results/u.txt').st_mode & 0o777))")
    return run([sys.executable, "-c", code], d)


def merged_in_estimates(d: Path) -> str:
    """The merged hardware is still estimated, from the same file (half the energy per batch)."""
    est = pd.read_parquet(d / "results/estimates/estimates.parquet").query("method == 'binned'") \
        .set_index(["workload", "hardware"])
    if ("burstgpt", OTHER_HW) not in est.index:
        return f"{OTHER_HW} is missing from the estimates"
    ratio = est.loc[("burstgpt", OTHER_HW), "energy_j"] / est.loc[("burstgpt", this_hw(d)), "energy_j"]
    return "" if 0.05 < ratio < 5 else f"merged/here energy ratio {ratio:.2f}: not the merged file's numbers"


def merged_left_out(d: Path) -> str:
    """Estimates of this machine's cell are made; the all-invalid merged cell is left out of them."""
    est = pd.read_parquet(d / "results/estimates/estimates.parquet")
    hws = set(est["hardware"])
    return "" if hws == {this_hw(d)} else f"estimates are for {sorted(hws)}"


def cell_remeasured(d: Path) -> str:
    df = pd.read_parquet(d / "results" / "measurements" / this_hw(d) / CELL)
    return "" if (df["status"] == "ok").all() and len(df) > 0 else "the rerun left no complete measurement"


# A replaced input's own derived tables go with it (Snakemake removes a job's outputs before it reruns
# the job): stale results of a file the user replaced are not results lost.
MERGED_AND_CHECKED = (f"results/measurements/{OTHER_HW}/{CELL}", f"results/checked/{OTHER_HW}/*")
TRACE_AND_PROFILE = ("data/raw/burstgpt_slice.csv", "results/profile/burstgpt.parquet",
                     "results/profile/burstgpt.stats.json")

CASES = [
    Case("--forcerun measure_cell with a merged file present", c_forcerun_measure, "steps (100%) done", ok=True,
         check=merged_in_estimates),
    Case("-F (force every rule) with a merged file and placed raw files", c_forceall, "steps (100%) done", ok=True,
         check=merged_in_estimates),
    Case("--force on the merged measurement file itself", c_force_merged, "kept as it is"),
    Case("--forcerun fetch_raw fetch_archive with every raw file placed", c_forcerun_fetch, "Nothing to be done",
         ok=True),
    Case("placed raw files after an edit of the fetch script", c_placed_raw_after_code_change,
         "Nothing to be done", ok=True),
    Case("asking for a cell of hardware this machine is not", c_other_hw_target,
         "measure it on a machine detected as a100-sxm4-80gb"),
    Case("deleted this machine's measurement file, then -n", c_deleted_measurement, "measure_cell re-planned",
         ok=True, touches=(f"results/measurements/{{hw}}/{CELL}",)),
    Case("deleted a profile table, then -n", c_deleted_profile, "profile_workload re-planned", ok=True,
         touches=("results/profile/burstgpt.parquet",)),
    Case("deleted the model folder, then -n", c_deleted_model, "build_model re-planned", ok=True,
         touches=("models/m1/*",)),
    Case("moved the checkout (a copy of the run), then -n", c_moved_checkout, "Nothing to be done", ok=True),
    Case("a -tp2 variant on a machine without GPUs: snakemake -n", c_tp2_without_gpus,
         "tensor parallel over 2 GPUs"),
    Case("a -tp2 variant on a machine without GPUs: check-config", c_tp2_check_config,
         "tensor parallel over 2 GPUs"),
    Case("a misspelt config key (measurement.repeat)", c_wrong_config_key, "unknown key 'repeat'"),
    Case("a raw file that is a link to nothing", c_broken_link, "which does not exist",
         touches=TRACE_AND_PROFILE),
    Case("a merged measurement file of random bytes", c_merged_random_bytes, "not a Parquet",
         touches=MERGED_AND_CHECKED),
    Case("a merged measurement file without energy_j", c_merged_no_energy, "energy_j",
         touches=MERGED_AND_CHECKED),
    Case("a merged measurement file whose rows all fail validation", c_merged_all_invalid, "left out", ok=True,
         touches=MERGED_AND_CHECKED, check=merged_left_out),
    Case("a merged file whose rows name another hardware than its folder", c_merged_wrong_folder,
         "a100-sxm4-80gb", touches=MERGED_AND_CHECKED),
    Case("a trace cut in the middle of a number (sha256: null)", c_truncated_trace, "cut short",
         touches=TRACE_AND_PROFILE),
    Case("a trace with a fractional token count", c_fractional_tokens, "12.5",
         touches=TRACE_AND_PROFILE),
    Case("a trace with an absurd token count", c_absurd_tokens, "1000000000000",
         touches=TRACE_AND_PROFILE),
    Case("a trace with a negative token count", c_negative_tokens, "-3",
         touches=TRACE_AND_PROFILE),
    Case("a trace column name that is not in the file", c_missing_column, "Prompt tokens",
         touches=TRACE_AND_PROFILE),
    Case("a trace that is not the published file (sha256 set)", c_changed_trace_sha, "sha256",
         touches=TRACE_AND_PROFILE),
    Case("a model config.json cut short: measure", c_corrupt_model_config_measure, "config.json",
         touches=("models/m1/config.json",)),
    Case("a model config.json cut short: flops", c_corrupt_model_config_flops, "config.json",
         touches=("models/m1/config.json",)),
    Case("a model folder without its tokenizer: measure", c_model_without_tokenizer, "tokenizer",
         touches=("models/m1/*",)),
    Case("a PG-19 book that is not JSON text: measure", c_bad_prompt_book, "pg19_sample.json",
         touches=("data/raw/pg19_sample.json",)),
    Case("python -m llm_energy measure onto the pipeline's own file", c_measure_cli_over_pipeline_file,
         "pass --overwrite"),
    Case("flops with a negative input length", c_flops_negative, "input"),
    Case("flops with batch 0", c_flops_batch_zero, "batch"),
    Case("kill -9 of a run mid-measurement, then bash scripts/run.sh", c_stale_lock, "steps (100%) done",
         ok=True, touches=("results/measurements/{hw}/*",), check=cell_remeasured),
    Case("bash scripts/run.sh while a job of a killed run still runs", c_busy_lock, "still running here"),
    Case("umask 002: a result file's mode", c_umask, "0o664", ok=True, touches=("results/u.txt",)),
]


def try_all(base: Path, scratch: Path, cases: list[Case] = CASES) -> list[Result]:
    return [try_case(case, base, scratch) for case in cases]


def table(results: list[Result]) -> str:
    rows = ["| # | what was tried | the line the user saw | traceback | files lost | s |",
            "|---|---|---|---|---|---|"]
    for i, r in enumerate(results, 1):
        line = r.line if len(r.line) <= 160 else r.line[:157] + "..."
        rows.append(f"| {i} | {r.case.name} | `{line.replace('|', '/')}` | {'yes' if r.traceback else 'no'} | "
                    f"{len(r.lost)}{' (' + ', '.join(r.lost[:3]) + ')' if r.lost else ''} | {r.seconds:.0f} |")
    passed = sum(r.passed for r in results)
    rows.append(f"\n{passed} passed, {len(results) - passed} failed")
    return "\n".join(rows)
