"""The run supervisor: one small process per agent run, between the engine
and the agent.

    python -S supervisor.py RUN_DIR

It reads ``RUN_DIR/run.json`` (argv, cwd, timeout), starts the agent in a
process group of its own with stdout and stderr going straight to
``RUN_DIR/output.raw``, enforces the timeout (terminate the group, then kill
it), and writes ``RUN_DIR/exit.json`` atomically when the agent is gone.
SIGTERM asks it to stop the agent the same way.

Because the agent writes to a file rather than to a pipe held by the engine,
an engine that dies or hands over to another (``factory run`` after the
console quits) leaves the agent working: the next engine reads the same
files and finishes the run. Standard library only, and started with ``-S``,
so that it costs milliseconds, not the engine's imports.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

# How long an agent gets to exit after SIGTERM before the group is killed.
DEFAULT_GRACE = 1.0


def write_json_atomically(path: str, data: dict) -> None:
    temporary = f"{path}.tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(data, handle)
    os.replace(temporary, path)


def stop_group(process: subprocess.Popen, grace: float) -> None:
    """SIGTERM the agent's process group, then SIGKILL whatever is left."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def main(run_dir: str) -> int:
    with open(os.path.join(run_dir, "run.json"), encoding="utf-8") as handle:
        run = json.load(handle)
    exit_path = os.path.join(run_dir, "exit.json")
    started = time.time()
    result: dict = {"exit_code": None, "signal": None, "timed_out": False, "stopped": False,
                    "error": None, "started": started, "ended": None}
    stop_requested = False

    def on_term(_signum, _frame):
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    with open(os.path.join(run_dir, "output.raw"), "ab", buffering=0) as output:
        try:
            process = subprocess.Popen(
                run["argv"],
                cwd=run["cwd"],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except FileNotFoundError:
            result["error"] = f"agent program not found: {run['argv'][0]}"
        except PermissionError:
            result["error"] = f"agent program is not executable: {run['argv'][0]}"
        except OSError as error:
            result["error"] = f"cannot start {run['argv'][0]}: {error.strerror or error}"
        else:
            with open(os.path.join(run_dir, "agent.pid"), "w", encoding="utf-8") as handle:
                handle.write(str(process.pid))
            deadline = started + float(run.get("timeout", 3600))
            grace = float(run.get("grace", DEFAULT_GRACE))
            while True:
                try:
                    # Short waits so that a stop request is seen promptly.
                    code = process.wait(timeout=0.1)
                    break
                except subprocess.TimeoutExpired:
                    pass
                if stop_requested:
                    result["stopped"] = True
                    stop_group(process, grace)
                    code = process.returncode
                    break
                if time.time() >= deadline:
                    result["timed_out"] = True
                    stop_group(process, grace)
                    code = process.returncode
                    break
            if code is not None and code < 0:
                result["signal"] = -code
            result["exit_code"] = code
            # Children the agent left behind in its group go with it.
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass
    result["ended"] = time.time()
    write_json_atomically(exit_path, result)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: supervisor.py RUN_DIR", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
