"""``python -m bench``: run every benchmark, each in a process of its own, and write one report.

Each module in BENCHES is run as ``python -m bench.<module> --json <file> [--quick]`` (most start
their own private redis-server, scratch PostgreSQL database and worker processes, and stop them);
its output is shown as it goes and kept in ``<out>/<module>.log``. Then ``<out>/report.md`` (the
figures, their baselines from the same run and the ratios, a table per benchmark) and
``<out>/report.png`` (the ratios, charted) are written. A benchmark that fails or times out is
reported as failed, with the tail of its output and the figures it measured before it stopped,
and the others still run; one whose module does not exist yet is reported as missing. The exit
status is non-zero if any failed (a missing one is only reported).

    .venv/bin/python -m bench --quick                  # a smoke run of everything, several minutes
    .venv/bin/python -m bench                          # full size: about half an hour
    .venv/bin/python -m bench --only ingest,labels     # some of them
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from bench.report import STATUS_FAILED, STATUS_MISSING, STATUS_OK, BenchRun, read_json, write_report

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent
# In the order they run; every module follows the --quick / --json convention (bench.report).
BENCHES = (
    "ingest",
    "channels",
    "followups",
    "outbound_rate",
    "media_send",
    "labels",
    "routing",
    "crm_sync",
    "intents",
    "lead_model",
    "accounts",
    "live",
    "inbox",
)
TIMEOUT_FULL = 3600.0
TIMEOUT_QUICK = 900.0
STOP_GRACE_SECONDS = 90.0  # after SIGTERM, for a benchmark to stop its processes and drop its database
ERROR_LINES = 30


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run every benchmark in bench/ and write a report (Markdown and a PNG chart).",
    )
    parser.add_argument("--quick", action="store_true", help="each benchmark's small sizes: a smoke run")
    parser.add_argument(
        "--only",
        metavar="NAMES",
        help=f"comma-separated benchmarks to run, of: {', '.join(BENCHES)} (default: all)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=BENCH_DIR / "results",
        help="directory for report.md, report.png and each benchmark's log (default: bench/results)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        help=f"seconds per benchmark before it is stopped (default {TIMEOUT_FULL:.0f}, "
        f"{TIMEOUT_QUICK:.0f} with --quick)",
    )
    args = parser.parse_args(argv)
    if args.only:
        names = [name.strip() for name in args.only.split(",") if name.strip()]
        unknown = sorted(set(names) - set(BENCHES))
        if unknown:
            parser.error(f"unknown benchmark(s): {', '.join(unknown)} (known: {', '.join(BENCHES)})")
        args.benches = [name for name in BENCHES if name in names]
    else:
        args.benches = list(BENCHES)
    if args.timeout is None:
        args.timeout = TIMEOUT_QUICK if args.quick else TIMEOUT_FULL
    return args


class Interrupted(Exception):
    """Ctrl-C or SIGTERM while a benchmark ran: it was stopped, and no further one is started."""


class Runner:
    def __init__(self, out: Path, quick: bool, timeout: float) -> None:
        self.out, self.quick, self.timeout = out, quick, timeout
        self.child: subprocess.Popen[bytes] | None = None
        self.stopping = False

    def run(self, module: str) -> BenchRun:
        if not (BENCH_DIR / f"{module}.py").exists():
            print(f"\n=== bench.{module}: missing (no bench/{module}.py), skipped", flush=True)
            return BenchRun(module, STATUS_MISSING, error=f"bench/{module}.py does not exist")
        log_path = self.out / f"{module}.log"
        handle, name = tempfile.mkstemp(prefix=f"wacrm-bench-{module}-", suffix=".json")
        os.close(handle)
        json_path = Path(name)
        json_path.unlink()  # the benchmark writes it; its absence means it wrote nothing
        command = [sys.executable, "-m", f"bench.{module}", "--json", str(json_path)]
        command += ["--quick"] if self.quick else []
        print(f"\n=== bench.{module}: {' '.join(command[1:])}", flush=True)
        load_start = os.getloadavg()[0]
        started = time.perf_counter()
        try:
            code, timed_out = self._execute(command, log_path)
            seconds = time.perf_counter() - started
            figures, json_error = [], None
            if json_path.exists():
                try:
                    figures = read_json(json_path)
                except (ValueError, TypeError, KeyError) as error:
                    json_error = f"its --json file could not be read: {error!r}"
        finally:
            json_path.unlink(missing_ok=True)
        load = (load_start, os.getloadavg()[0])
        error = None
        if timed_out:
            error = f"stopped after the {self.timeout:.0f} s timeout"
        elif code != 0:
            error = f"exit status {code}"
        elif json_error:
            error = json_error
        elif not figures:
            error = "it exited 0 but reported no figures (does it accept --json PATH?)"
        status = STATUS_OK if error is None else STATUS_FAILED
        if status == STATUS_FAILED:
            cause = _last_exception(log_path)
            error = f"{error}{': ' + cause if cause else ''}\n\n{_tail(log_path, ERROR_LINES)}"
        print(f"=== bench.{module}: {status} in {seconds:.0f} s, {len(figures)} figures", flush=True)
        return BenchRun(module, status, figures, seconds, code, error, str(log_path), load)

    def _execute(self, command: list[str], log_path: Path) -> tuple[int, bool]:
        """Run ``command``, copying its output to ours and to ``log_path``; its exit status and
        whether it was stopped for taking longer than the timeout."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with log_path.open("wb") as log:
            self.child = subprocess.Popen(
                command, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
            )
            copier = threading.Thread(target=_copy, args=(self.child.stdout, log), daemon=True)
            copier.start()
            timed_out = False
            try:
                self.child.wait(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                print(f"\n=== timed out after {self.timeout:.0f} s: stopping it", flush=True)
                self.stop_child()
            except KeyboardInterrupt:
                # Ctrl-C reached the benchmark too (same process group): let it clean up.
                self.stopping = True
                self.stop_child(signal.SIGINT)
            copier.join(timeout=10)
            code = self.child.returncode
            self.child = None
        if self.stopping:
            raise Interrupted
        return code, timed_out

    def stop_child(self, first: signal.Signals = signal.SIGTERM) -> None:
        """Ask the benchmark to stop (it stops its processes and drops its database), then kill it."""
        child = self.child
        if child is None or child.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(first)
        try:
            child.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()

    def terminate(self, *_: object) -> None:
        """SIGTERM to the runner: stop the running benchmark cleanly, start no other."""
        self.stopping = True
        threading.Thread(target=self.stop_child, daemon=True).start()


def _copy(source: IO[bytes], log: IO[bytes]) -> None:
    for line in iter(source.readline, b""):
        log.write(line)
        log.flush()
        sys.stdout.buffer.write(line)
        sys.stdout.buffer.flush()


_EXCEPTION = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Expired)\b(:.*)?$")


def _last_exception(path: Path) -> str | None:
    """The exception that ended the last traceback in the output: the benchmark's own, or the root
    cause when its message quotes the log of a process it started (uvicorn, a worker)."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return None
    starts = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call last):")]
    if not starts:
        return None
    for line in lines[starts[-1] :]:
        if _EXCEPTION.match(line):
            return line.strip()[:300]
    return None


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no output)"
    return "\n".join(text.rstrip().splitlines()[-lines:]) or "(no output)"


def context(args: argparse.Namespace, started: datetime.datetime) -> dict[str, str]:
    """What the run was: when, where, at what size, against which versions."""
    finished = datetime.datetime.now().astimezone()
    info = {
        "mode": "quick (--quick: small sizes, a smoke run)" if args.quick else "full size",
        "started": started.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "finished": finished.strftime("%Y-%m-%d %H:%M %Z"),
        "machine": f"{platform.node()}, {os.cpu_count()} CPUs, {_memory()}, load average now "
        + ", ".join(f"{load:.2f}" for load in os.getloadavg()),
        "software": f"Python {platform.python_version()}, {_redis_version()}, {_postgres_version()}",
    }
    commit = _commit()
    if commit:
        info["commit"] = f"{commit} (plus any uncommitted changes in the working tree)"
    return info


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024**2:.1f} GiB RAM"
    except OSError:
        pass
    return "RAM unknown"


def _redis_version() -> str:
    binary = shutil.which("redis-server")
    if not binary:
        return "redis-server not found"
    try:
        output = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "redis-server (version unknown)"
    version = next((part[2:] for part in output.split() if part.startswith("v=")), "?")
    return f"redis-server {version} (a private one per benchmark)"


def _postgres_version() -> str:
    from sqlalchemy import create_engine, text

    url = os.environ.get("BENCH_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
    engine = create_engine(url, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as connection:
            version = connection.execute(text("SHOW server_version")).scalar()
        return f"PostgreSQL {version} (a scratch database per benchmark)"
    except Exception as error:
        return f"PostgreSQL unreachable ({type(error).__name__})"
    finally:
        engine.dispose()


def _commit() -> str | None:
    """The checked-out commit, read from .git (no git command is run)."""
    git = PROJECT_ROOT / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head[:12]
        ref = head[5:]
        if (git / ref).exists():
            return (git / ref).read_text().strip()[:12]
        for line in (git / "packed-refs").read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split()[0][:12]
    except OSError:
        return None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    started = datetime.datetime.now().astimezone()
    runner = Runner(args.out, args.quick, args.timeout)
    signal.signal(signal.SIGTERM, runner.terminate)
    runs: list[BenchRun] = []
    interrupted = False
    for module in args.benches:
        try:
            runs.append(runner.run(module))
        except Interrupted:
            interrupted = True
            runs.append(
                BenchRun(module, STATUS_FAILED, error="interrupted", log=str(args.out / f"{module}.log"))
            )
            break
        if runner.stopping:
            interrupted = True
            break
    markdown, chart = write_report(runs, args.out, context(args, started))
    print(f"\nReport: {markdown}\nChart:  {chart}")
    for run in runs:
        print(f"  {run.module:14s} {run.status:8s} {len(run.figures):3d} figures")
    if interrupted:
        return 130
    return 1 if any(run.status == STATUS_FAILED for run in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
