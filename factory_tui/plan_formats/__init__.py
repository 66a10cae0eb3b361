"""Plans kept by other tools (beads, Backlog.md, Task Master), read as
import records, and the factory's plan written out for them.

``records`` holds what every reader hands on and the checks every batch
passes; ``beads``, ``backlog`` and ``taskmaster`` each read one tool's
files (text in, records out) and say how its statuses and priorities map
to ours and back; ``vocabulary`` puts the three side by side; ``export``
writes a plan as JSON lines or as the import checklist. All pure: reading
files is backends/source_files.py's, the log backends/source_log.py's.
"""
