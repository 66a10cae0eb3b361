"""The demo base's living documents: a few files of
``.factory/artifacts/`` that show each way a document goes into prompts
(always; when a task touches some paths or carries a label; never), so
that the Artifacts pane and the prompts of the demo's agents have
something real to show. Written before the demo's second commit, so that
their history starts there."""

from __future__ import annotations

from pathlib import Path

DOCUMENTS = {
    "api-style.md": """\
---
title: How the shopfront API is written
include: when
when:
  paths: ["shopfront/**"]
  labels: [api]
budget: 4000
---
# API style

- Every route lives in its own module under `shopfront/` and returns
  `(status, body)`; the body is a dict that serialises to JSON.
- Errors say what the caller can do about them, never why the server
  failed inside (no stack traces, no SQL).
- Passwords and tokens never appear in logs or error bodies.
""",
    "security.md": """\
---
title: Security rules every change keeps
include: always
budget: 3000
---
# Security

- Hash passwords with argon2 (`argon2-cffi`); never compare them with `==`.
- Rate-limit every endpoint that takes a secret.
- Add a test for each rule a change relies on.
""",
    "roadmap-notes.md": """\
---
title: The operator's own notes on what comes next
include: never
---
# Roadmap notes

Payments after the audit log; ask the warehouse factory about stock
reservations before the checkout work starts.
""",
}


def write_demo_documents(root: Path) -> list[Path]:
    """Write the demo's documents into ``root``'s ``.factory/artifacts/``
    (the files a fresh demo holds, never anything already there)."""
    folder = root / ".factory" / "artifacts"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in DOCUMENTS.items():
        target = folder / name
        if not target.exists():
            target.write_text(text, encoding="utf-8")
            written.append(target)
    return written
