"""vLLM online: the OpenAI-compatible server as a real subprocess on a loopback port, fed over HTTP.

Requests go to ``/v1/completions`` as token ids, with at most the point's batch size in flight
(the client's concurrency cap; the server's scheduler batches continuously). Arrivals come all at
once or as a Poisson process. A metered window streams all of its batches' requests through the
server in one go, which is what an online server sees; the energy per batch is the window's
energy divided by its batches, as offline. The server uses the same engine settings as the
offline variant it is compared with (``vllm-eager``), so the comparison isolates the serving path.

The server's output (stdout and stderr: vLLM's log lines from every server process, tracebacks) is
copied line by line into this process's log, under the logger ``llm_energy.measurement.backends.vllm_online.server``
at the level each vLLM line names, so that a cell's log file and the terminal show the server's run
too; its last lines also go into the error when the server fails to start.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from llm_energy.measurement.backends.base import BatchResult
from llm_energy.measurement.backends.vllm import VllmBase, describe_vllm, engine_args, sampling_kwargs

log = logging.getLogger(__name__)

SERVED_NAME = "measured"


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_command(args: dict, port: int) -> list[str]:
    """``python -m vllm.entrypoints.openai.api_server`` with the engine arguments of the variant."""
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", args["model"],
           "--served-model-name", SERVED_NAME, "--host", "127.0.0.1", "--port", str(port),
           "--dtype", args["dtype"], "--seed", str(args["seed"]), "--max-model-len", str(args["max_model_len"]),
           "--max-num-seqs", str(args["max_num_seqs"]), "--max-num-batched-tokens",
           str(args["max_num_batched_tokens"]), "--tensor-parallel-size", str(args["tensor_parallel_size"]),
           "--enable-prefix-caching" if args["enable_prefix_caching"] else "--no-enable-prefix-caching",
           "--disable-uvicorn-access-log",
           # stop by draining (nothing is in flight when close() stops it) rather than vLLM's default
           # abort, whose immediate kill of the engine core logged an EngineDeadError traceback
           "--shutdown-timeout", "10"]
    if args["enforce_eager"]:
        cmd.append("--enforce-eager")
    if "speculative_config" in args:
        cmd += ["--speculative-config", json.dumps(args["speculative_config"])]
    return cmd


# "(APIServer pid=12) WARNING 11-26 12:00:00 [file.py:1] ..." (vLLM) or "INFO:     ..." (uvicorn).
_LEVEL = re.compile(r"^(?:\([^)]*\)\s+)?(DEBUG|INFO|WARNING|ERROR|CRITICAL)\b")


def line_level(line: str, default: int = logging.INFO) -> int:
    """The logging level a server output line names, else ``default``."""
    m = _LEVEL.match(line)
    return getattr(logging, m.group(1)) if m else default


class OutputPump:
    """Copies a subprocess's output stream, line by line, into a logger; keeps the last lines.

    A thread reads the pipe until the end of the stream, so the subprocess never blocks on a full
    pipe.
    """

    def __init__(self, stream, logger: logging.Logger, keep: int = 50):
        self.logger = logger
        self._tail: deque[str] = deque(maxlen=keep)
        # Set when we stop the server (every measurement done): what it logs then is its own teardown
        # (vLLM's output handler logs an EngineDeadError traceback when its engine core exits first),
        # so lines above INFO go to the log at INFO and are counted, not sent as errors.
        self.stopping = threading.Event()
        self.errors_while_stopping = 0
        self._thread = threading.Thread(target=self._pump, args=(stream,), name="vllm-server-output", daemon=True)
        self._thread.start()

    def _pump(self, stream) -> None:
        unmarked = logging.INFO  # the level of lines that name none: ERROR within a traceback
        with stream:
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                if not line.strip():
                    continue
                if _LEVEL.match(line):
                    unmarked = logging.INFO
                elif line.startswith("Traceback (most recent call last)"):
                    unmarked = logging.ERROR
                self._tail.append(line)
                level = line_level(line, unmarked)
                if level > logging.INFO and self.stopping.is_set():
                    self.errors_while_stopping += level >= logging.ERROR
                    level = logging.INFO
                self.logger.log(level, "%s", line)

    def tail(self, lines: int = 15) -> str:
        """The last ``lines`` lines read so far."""
        return "\n".join(list(self._tail)[-lines:])

    def join(self, timeout: float | None = None) -> None:
        """Wait until the stream ended (every process holding it exited) or ``timeout`` passed."""
        self._thread.join(timeout)


def group_alive(pgid: int) -> bool:
    """Whether a process group still has a running (not zombie) process."""
    import psutil

    for p in psutil.process_iter(["pid", "status"]):
        try:
            if os.getpgid(p.info["pid"]) == pgid and p.info["status"] != psutil.STATUS_ZOMBIE:
                return True
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return False


class VllmOnlineBackend(VllmBase):
    """A vLLM server subprocess per cell (started in :meth:`load`, stopped in :meth:`close`)."""

    VARIANTS = ("vllm-online",)

    def __init__(self, model_dir: str, *, kv_cache_gib: float = 1.0, arrival: str = "all-at-once",
                 rate_per_s: float = 10.0, startup_timeout_s: float = 600.0, **kwargs):
        super().__init__(model_dir, kv_cache_gib=kv_cache_gib, **kwargs)
        if arrival not in ("all-at-once", "poisson"):
            raise ValueError(f"unknown arrival process {arrival!r}")
        self.arrival = arrival
        self.rate_per_s = rate_per_s
        self.startup_timeout_s = startup_timeout_s
        self.proc: subprocess.Popen | None = None
        self._output: OutputPump | None = None
        self._rng = np.random.default_rng(self.seed)

    def load(self) -> None:
        self._prepare()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = server_command(engine_args(self), self.port)
        log.info("starting vLLM server on port %d: %s", self.port, " ".join(cmd))
        # Unbuffered and uncoloured, since its output is read from a pipe into the log as it comes.
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "VLLM_LOGGING_COLOR": "0"}
        # Its own process group, so that close() stops the server and every worker it spawned.
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True, env=env)
        self._output = OutputPump(self.proc.stdout, log.getChild("server"))
        try:
            self._wait_healthy()
        except BaseException:
            self.close()
            raise

    def _server_log_tail(self, lines: int = 15) -> str:
        if self._output is None:
            return ""
        if self.proc is not None and self.proc.poll() is not None:
            self._output.join(timeout=5)  # an exited server's last lines may still be in the pipe
        return self._output.tail(lines)

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"vLLM server exited with {self.proc.returncode} before it was ready; its last "
                                   f"lines:\n{self._server_log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                    if r.status == 200:
                        log.info("vLLM server ready on port %d", self.port)
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        raise RuntimeError(f"vLLM server did not answer /health within {self.startup_timeout_s:.0f} s; its last "
                           f"lines:\n{self._server_log_tail()}")

    def _body(self, prompt: list[int], output_len: int) -> dict:
        body = {"model": SERVED_NAME, "prompt": prompt, "return_token_ids": True, "stream": False,
                **sampling_kwargs(self, output_len)}
        if self.decoding == "beam":
            body.update(use_beam_search=True, n=self.options["beam_width"], temperature=0.0)
            body.pop("min_tokens")
        return body

    def _complete(self, prompt: list[int], output_len: int) -> int:
        """One request; tokens generated (the best choice's)."""
        req = urllib.request.Request(self.url + "/v1/completions", data=json.dumps(self._body(prompt, output_len))
                                     .encode(), headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=3600) as r:
                out = json.loads(r.read())
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"vLLM server answered {exc.code}: {exc.read()[:500]!r}") from None
        return len(out["choices"][0]["token_ids"])

    def timed_request(self, prompt: list[int], output_len: int, timeout_s: float = 3600.0) -> dict:
        """One streamed request: when it was sent, when each chunk of tokens came (the first is the time
        to first token) and how many tokens each held; the server's token count at the end."""
        body = {**self._body(prompt, output_len), "stream": True, "stream_options": {"include_usage": True}}
        req = urllib.request.Request(self.url + "/v1/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        sent, chunks, usage = time.perf_counter(), [], None
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as r:
                for raw in r:
                    line = raw.decode().strip()
                    if not line.startswith("data:") or line == "data: [DONE]":
                        continue
                    event, now = json.loads(line[5:]), time.perf_counter()
                    usage = event.get("usage") or usage
                    for choice in event.get("choices") or []:
                        n = len(choice.get("token_ids") or []) or (1 if choice.get("text") else 0)
                        if n:
                            chunks.append((now, n))
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"vLLM server answered {exc.code}: {exc.read()[:500]!r}") from None
        tokens = int(usage["completion_tokens"]) if usage else sum(n for _, n in chunks)
        return {"sent_s": sent, "chunks": chunks, "tokens": tokens, "done_s": time.perf_counter()}

    def _stream(self, prompts: list[list[int]], output_lens: list[int], concurrency: int) -> list[int]:
        """Send every request (arrival process), at most ``concurrency`` in flight; tokens per request."""
        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            futures = []
            for prompt, length in zip(prompts, output_lens):
                if self.arrival == "poisson" and futures:
                    time.sleep(float(self._rng.exponential(1.0 / self.rate_per_s)))
                futures.append(pool.submit(self._complete, prompt, length))
            return [f.result() for f in futures]

    def run_many(self, prompts: list[list[int]], output_len: int, n: int) -> BatchResult:
        tokens = self._stream(prompts * n, [output_len] * (len(prompts) * n), len(prompts))
        bad = next((k for k, t in enumerate(tokens) if t != output_len), None)
        start = 0 if bad is None else bad - bad % len(prompts)
        return BatchResult(output_tokens=tokens[start:start + len(prompts)])

    def run(self, prompts: list[list[int]], output_len: int) -> BatchResult:
        return self.run_many(prompts, output_len, 1)

    def serve(self, prompts: list[list[int]], output_lens: list[int], batch_size: int) -> list[int]:
        return self._stream(prompts, output_lens, batch_size)

    def close(self) -> None:
        """Stop the server and every process of its group (engine core, workers); SIGKILL after 30 s.

        SIGTERM goes to the API server alone, which stops its engine core and workers in its own order;
        SIGTERM to the whole group made the engine core exit before the server, whose output handler then
        logged an EngineDeadError traceback at every clean stop. The group gets SIGTERM only if it
        outlives the server."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if self._output is not None:
            self._output.stopping.set()
        try:
            proc.terminate()
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 10
        while group_alive(proc.pid) and time.monotonic() < deadline:
            proc.poll()
            time.sleep(0.2)
        if group_alive(proc.pid):
            log.warning("vLLM server group %d did not stop on SIGTERM; killing it", proc.pid)
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait(timeout=10)
        if self._output is not None:
            self._output.join(timeout=5)
            if self._output.errors_while_stopping:
                log.info("the vLLM server logged %d error line(s) while stopping, after the last measurement "
                         "(kept above at INFO: its teardown, not a failed measurement)",
                         self._output.errors_while_stopping)

    def __del__(self):
        self.close()

    def describe(self) -> dict:
        return {**describe_vllm(self), "serving": "openai-server", "arrival": self.arrival,
                "arrival_rate_per_s": self.rate_per_s if self.arrival == "poisson" else float("nan")}
