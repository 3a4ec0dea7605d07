"""Rule paper_pdf: build paper/main.pdf with latexmk when it is installed; otherwise say how to get it.

The rule's output is a one-line status file, so that a machine without TeX neither fails the run
nor re-runs the rule every time. A LaTeX error where latexmk exists does fail: the paper is broken.
"""

import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from llm_energy import UserError
from llm_energy.pipeline.io import atomic_path, write_text
from llm_energy.pipeline.rulekit import run_rule

log = logging.getLogger("llm_energy.paper.registry")

HOW = ("install a TeX distribution with latexmk (Debian/Ubuntu: apt-get install latexmk texlive-latex-base "
       "texlive-latex-recommended; macOS: MacTeX), then run `cd paper && latexmk -pdf main.tex`, or rebuild "
       "it here with `snakemake --cores 1 --forcerun paper_pdf`")


def rel(path) -> str:
    """``path`` relative to the working directory (the run's folder): the status file names no absolute
    path, so that it stays true, and the same, when the checkout or run folder moves."""
    return os.path.relpath(path)


def main(sm):
    tex = Path(sm.input.main)
    paper = Path(sm.output.status).parent
    pdf = paper / "main.pdf"
    latexmk = shutil.which("latexmk")
    if latexmk is None:
        msg = f"{rel(pdf)} not built: latexmk not found; {HOW}."
        log.warning(msg)
        write_text(msg + "\n", sm.output.status)
        return
    # Build in a scratch folder of this run's paper/ (main.tex copied from the repository, which may be
    # elsewhere with --directory; figures/ and tables/ linked), so that only main.pdf is left behind.
    build = Path(tempfile.mkdtemp(prefix=".latexmk-", dir=paper))
    try:
        shutil.copyfile(tex, build / "main.tex")
        for sub in ("figures", "tables"):
            (build / sub).symlink_to(Path("..") / sub)
        proc = subprocess.run([latexmk, "-pdf", "-interaction=nonstopmode", "-halt-on-error", "main.tex"],
                              cwd=build, capture_output=True, text=True, timeout=600)
        log.info("%s", proc.stdout[-4000:])
        if proc.returncode != 0 or not (build / "main.pdf").exists():
            tail = (build / "main.log").read_text(errors="replace")[-3000:] if (build / "main.log").exists() else ""
            log.error("latexmk output:\n%s\n%s\nmain.log (end):\n%s", proc.stdout[-3000:], proc.stderr[-2000:], tail)
            raise UserError(f"latexmk failed to build {rel(tex)} (exit {proc.returncode}); see the rule's log")
        with atomic_path(pdf) as tmp:
            shutil.copyfile(build / "main.pdf", tmp)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    msg = f"{rel(pdf)} built with latexmk ({pdf.stat().st_size} bytes)."
    log.info(msg)
    write_text(msg + "\n", sm.output.status)


if __name__ == "__main__":
    run_rule(snakemake, main)  # noqa: F821 (injected by Snakemake)
