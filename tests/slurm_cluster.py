"""A throw-away one-node SLURM cluster on this machine, for testing the SLURM profile for real.

Debian's ``slurmctld``, ``slurmd``, ``slurm-client`` and ``munge`` (installed with apt-get when
missing; needs root). Everything lives in a temporary folder: the munge key and socket, a
``slurm.conf`` (one node with this machine's CPUs and memory, one default partition named ``cpu``
like the profile's default, no accounting database), state, spool and logs. Clients find the
cluster through ``SLURM_CONF``, and through /etc/slurm/slurm.conf, a link to that file while the
cluster runs (``srun`` inside a Snakemake job reads only that path). The daemons run in the
foreground as children of this process and are always stopped again by process id, also when the
code using the cluster fails.

    with slurm_cluster() as cluster:
        subprocess.run(["sbatch", "--wrap", "hostname"], env=cluster.env)

From a shell (a command runs with the cluster's ``SLURM_CONF`` set, then the cluster stops):

    python tests/slurm_cluster.py -- sinfo
    python tests/slurm_cluster.py -- .venv/bin/snakemake --profile workflow/profiles/slurm \\
        --slurm-no-account --slurm-status-command squeue
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("slurm_cluster")

PACKAGES = ["slurmctld", "slurmd", "slurm-client", "munge"]
COMMANDS = ["slurmctld", "slurmd", "sbatch", "srun", "sinfo", "squeue", "scancel", "scontrol", "munged"]
PARTITION = "cpu"  # the SLURM profile's default partition
# Commands inside a job find the cluster here: Snakemake's job step drops SLURM_CONF from the
# environment of the `srun` it starts, so srun reads only the compiled-in default path.
DEFAULT_CONF = Path("/etc/slurm/slurm.conf")
MARKER = "# Throw-away one-node cluster (tests/slurm_cluster.py)"


class ClusterError(RuntimeError):
    """The cluster could not be installed or started; the message says which step and shows its log."""


@dataclass
class Cluster:
    """A running one-node cluster: its folder, the environment clients need, and the daemons' processes."""

    root: Path
    conf: Path
    node: str
    cpus: int
    memory_mb: int
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        """This process's environment plus ``SLURM_CONF`` pointing at the cluster."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def run(self, *cmd: str, timeout: float = 30, check: bool = True) -> subprocess.CompletedProcess:
        """Run a SLURM client command against this cluster."""
        return subprocess.run(list(cmd), env=self.env, capture_output=True, text=True, timeout=timeout,
                              check=check)

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.root / "log" / f"{name}.log"
        if not path.exists():
            return f"({path} does not exist)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def ensure_installed() -> None:
    """Install Debian's SLURM and munge packages when any of their commands is missing."""
    missing = [c for c in COMMANDS if shutil.which(c) is None and not Path("/usr/sbin", c).exists()]
    if not missing:
        return
    if os.geteuid() != 0:
        raise ClusterError(f"{', '.join(missing)} missing and not root: install {' '.join(PACKAGES)}")
    log.info("installing %s (missing: %s)", " ".join(PACKAGES), ", ".join(missing))
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    apt = ["apt-get", "-o", "DPkg::Lock::Timeout=600", "-qq"]
    for cmd in ([*apt, "update"], [*apt, "install", "-y", "--no-install-recommends", *PACKAGES]):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            raise ClusterError(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise ClusterError("cannot read MemTotal from /proc/meminfo")


def write_config(root: Path, node: str, cpus: int, memory_mb: int) -> Path:
    """slurm.conf for one node and one default partition; state, spool, logs and pids under ``root``."""
    for sub in ("state", "spool", "log", "run"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    conf = root / "slurm.conf"
    conf.write_text(f"""{MARKER}
ClusterName=llmenergy
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root / 'munge' / 'munge.socket'}
StateSaveLocation={root / 'state'}
SlurmdSpoolDir={root / 'spool'}
SlurmctldPidFile={root / 'run' / 'slurmctld.pid'}
SlurmdPidFile={root / 'run' / 'slurmd.pid'}
SlurmctldLogFile={root / 'log' / 'slurmctld.log'}
SlurmdLogFile={root / 'log' / 'slurmd.log'}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=5
NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName={PARTITION} Nodes={node} Default=YES MaxTime=INFINITE State=UP
""")
    return conf


def link_default_conf(conf: Path) -> None:
    """Point /etc/slurm/slurm.conf at ``conf``; refuse to replace a real cluster's configuration."""
    if DEFAULT_CONF.is_symlink() or DEFAULT_CONF.exists():
        ours = DEFAULT_CONF.is_symlink() and (not DEFAULT_CONF.exists() or
                                               DEFAULT_CONF.read_text(errors="replace").startswith(MARKER))
        if not ours:
            raise ClusterError(f"{DEFAULT_CONF} exists and is not from tests/slurm_cluster.py: this machine "
                               "has a SLURM configuration of its own, which a throw-away cluster must not replace")
        DEFAULT_CONF.unlink()  # left by an earlier throw-away cluster that was killed
    DEFAULT_CONF.parent.mkdir(parents=True, exist_ok=True)
    DEFAULT_CONF.symlink_to(conf)


def unlink_default_conf(conf: Path) -> None:
    """Remove /etc/slurm/slurm.conf when it is this cluster's link."""
    if DEFAULT_CONF.is_symlink() and Path(os.readlink(DEFAULT_CONF)) == conf:
        DEFAULT_CONF.unlink()


def _start(cluster: Cluster, name: str, cmd: list[str]) -> None:
    out = open(cluster.root / "log" / f"{name}.out", "w")
    cluster.processes[name] = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=cluster.env,
                                               start_new_session=True)
    log.info("started %s (pid %d)", name, cluster.processes[name].pid)


def _wait_for(what: str, check, timeout: float, cluster: Cluster) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, proc in cluster.processes.items():
            if proc.poll() is not None:
                out = (cluster.root / "log" / f"{name}.out").read_text(errors="replace")[-2000:]
                raise ClusterError(f"{name} exited with status {proc.returncode} while waiting for {what}:\n"
                                   f"{out}\n{cluster.log_tail(name)}")
        if check():
            return
        time.sleep(0.5)
    raise ClusterError(f"timed out after {timeout:.0f} s waiting for {what}\n"
                       f"slurmctld:\n{cluster.log_tail('slurmctld')}\nslurmd:\n{cluster.log_tail('slurmd')}")


def node_state(cluster: Cluster) -> str:
    """The node's state as sinfo reports it ('' when slurmctld does not answer)."""
    proc = cluster.run("sinfo", "--noheader", "--Node", "--format=%T", timeout=10, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else ""


def start(root: Path, cpus: int | None = None, memory_mb: int | None = None) -> Cluster:
    """Start munged, slurmctld and slurmd under ``root`` and wait until the node is idle."""
    ensure_installed()
    node = socket.gethostname().split(".")[0]
    cpus = cpus or os.cpu_count() or 1
    # Leave some memory to the machine; SLURM refuses jobs that ask for more than RealMemory.
    memory_mb = memory_mb or int(_memory_mb() * 0.8)
    conf = write_config(root, node, cpus, memory_mb)
    cluster = Cluster(root=root, conf=conf, node=node, cpus=cpus, memory_mb=memory_mb)
    link_default_conf(conf)
    munge = root / "munge"
    munge.mkdir(mode=0o700, exist_ok=True)
    key = munge / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    try:
        _start(cluster, "munged", ["munged", "--foreground", "--force", f"--key-file={key}",
                                   f"--socket={munge / 'munge.socket'}", f"--pid-file={munge / 'munged.pid'}",
                                   f"--seed-file={munge / 'munged.seed'}", f"--log-file={root / 'log' / 'munged.log'}"])
        _wait_for("the munge socket", (munge / "munge.socket").exists, 20, cluster)
        # -i: ignore any state from an earlier cluster; the folder is new anyway.
        _start(cluster, "slurmctld", ["slurmctld", "-D", "-i", "-f", str(conf)])
        _wait_for("slurmctld to answer sinfo", lambda: bool(node_state(cluster)) or _ctld_up(cluster), 60, cluster)
        _start(cluster, "slurmd", ["slurmd", "-D", "-f", str(conf)])
        _wait_for("the node to be idle", lambda: node_state(cluster).startswith("idle"), 90, cluster)
    except BaseException:
        stop(cluster)
        raise
    log.info("SLURM cluster up: node %s, %d CPUs, %d MB, partition %s, SLURM_CONF=%s", node, cpus, memory_mb,
             PARTITION, conf)
    return cluster


def _ctld_up(cluster: Cluster) -> bool:
    return cluster.run("scontrol", "ping", timeout=10, check=False).stdout.find("UP") >= 0


def stop(cluster: Cluster, timeout: float = 20) -> None:
    """Cancel every job, then stop slurmd, slurmctld and munged by process id (SIGTERM, then SIGKILL)."""
    if "slurmctld" in cluster.processes and cluster.processes["slurmctld"].poll() is None:
        with contextlib.suppress(Exception):
            cluster.run("scancel", "--full", "--user", str(os.getuid()), timeout=10, check=False)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and cluster.run("squeue", "--noheader", timeout=10,
                                                              check=False).stdout.strip():
                time.sleep(0.5)
    for name in ("slurmd", "slurmctld", "munged"):
        proc = cluster.processes.get(name)
        if proc is None or proc.poll() is not None:
            continue
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s (pid %d) did not stop on SIGTERM; killing it", name, proc.pid)
            proc.kill()
            proc.wait(timeout=timeout)
        log.info("stopped %s (pid %d)", name, proc.pid)
    unlink_default_conf(cluster.conf)


@contextlib.contextmanager
def slurm_cluster(root: str | Path | None = None, **kwargs) -> Iterator[Cluster]:
    """A running cluster for the ``with`` block; stopped afterwards whatever happens in the block.

    The folder (a new temporary one unless ``root`` is given) is removed afterwards only when it
    was made here.
    """
    made = root is None
    root = Path(tempfile.mkdtemp(prefix="slurm-")) if made else Path(root)
    root.chmod(0o700)
    cluster = start(root, **kwargs)
    try:
        yield cluster
    finally:
        stop(cluster)
        if made:
            shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    cmd = argv[argv.index("--") + 1:] if "--" in argv else ["sinfo"]
    # SIGTERM (a CI time-out, `kill`) unwinds through the `with` block, so the daemons stop too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with slurm_cluster() as cluster:
        return subprocess.run(cmd, env=cluster.env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
