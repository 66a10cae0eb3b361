"""A second process that takes the log's write lock over and over, for the
benchmarks that ask how long something else held it (an import, a retention
pass): run ``PROBER`` with ``python -c`` and the arguments LOG STOP PAUSE;
it prints ``ready``, probes until the file STOP exists, then prints one JSON
line: probes made, the longest wait for the lock, waits over 100 ms."""

PROBER = r"""
import json, sqlite3, sys, time
from pathlib import Path

log, stop, pause = sys.argv[1], Path(sys.argv[2]), float(sys.argv[3])
conn = sqlite3.connect(log, isolation_level=None, timeout=120)
waits = []
print("ready", flush=True)
while not stop.exists():
    start = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    waits.append(time.perf_counter() - start)
    conn.execute("COMMIT")
    time.sleep(pause)
conn.close()
print(json.dumps({"probes": len(waits), "max_wait": max(waits, default=0.0),
                  "over_100ms": sum(w > 0.1 for w in waits)}), flush=True)
"""
