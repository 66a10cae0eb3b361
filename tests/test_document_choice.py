"""Which living documents a prompt takes and in what order (issue 10 §1):
the most specific first, ``include: never`` never, ``when`` by path and by
label; each within its own budget and all within ``[artifacts]
prompt_budget``, what was cut or left out named in the prompt."""

from __future__ import annotations

import re

from factory_tui.backends.document_choice import TaskFacts, choose_documents, paths_named, specificity
from factory_tui.backends.documents import parse_document
from factory_tui.backends.living_documents import facts_for, for_prompt
from factory_tui.backends.prompt import MIN_DOCUMENT_SHOWN, build_prompt
from factory_tui.model import State, Task


def doc(name: str, front: str = "", body: str = "text\n"):
    text = f"---\n{front}\n---\n{body}" if front else body
    return parse_document(name, text.encode("utf-8"))


def names(documents, facts: TaskFacts) -> list[str]:
    return [chosen.name for chosen in choose_documents(documents, facts)]


DOCS = [
    doc("zz-always.md"),
    doc("aa-always.md"),
    doc("api.md", "when: [src/api/**]"),
    doc("src.md", "when: [src/**]"),
    doc("python.md", "when: ['*.py']"),
    doc("ui.md", "when: ['label:ui']"),
    doc("backend.md", "when: {labels: [backend]}"),
    doc("secret.md", "include: never"),
    doc("broken.md", "include: perhaps"),
    doc("history.md", "generated: true"),
]


def test_the_order_is_path_matches_most_specific_first_then_labels_then_always_then_generated() -> None:
    facts = TaskFacts(labels=("backend", "ui"), paths=("src/api/users.py",))
    assert names(DOCS, facts) == [
        "api.md", "src.md", "python.md",  # src/api/** before src/** before *.py
        "backend.md", "ui.md",  # labels, by name
        "aa-always.md", "zz-always.md",  # always, by name
        "history.md",  # the generated history last
    ]
    reasons = {chosen.name: chosen.reason for chosen in choose_documents(DOCS, facts)}
    assert reasons["api.md"] == "path src/api/**" and reasons["ui.md"] == "label ui"
    assert specificity("src/api/**") > specificity("src/**") > specificity("*.py") == 0


def test_include_never_and_a_broken_document_never_go_in() -> None:
    everything = TaskFacts(labels=("ui", "backend"), paths=("src/api/x.py",))
    chosen = names(DOCS, everything)
    assert "secret.md" not in chosen and "broken.md" not in chosen


def test_when_by_path_and_by_label() -> None:
    # Nothing about the task: only the always ones and the history.
    assert names(DOCS, TaskFacts()) == ["aa-always.md", "zz-always.md", "history.md"]
    assert names(DOCS, TaskFacts(paths=("web/app.py",))) == ["python.md", "aa-always.md", "zz-always.md", "history.md"]
    assert names(DOCS, TaskFacts(labels=("ui",))) == ["ui.md", "aa-always.md", "zz-always.md", "history.md"]
    # A document matching both ways is listed once, by its path.
    both = [doc("both.md", "when: [src/**, 'label:ui']")]
    assert [c.reason for c in choose_documents(both, TaskFacts(labels=("ui",), paths=("src/a.c",)))] == ["path src/**"]


def test_paths_named_in_a_title_and_body() -> None:
    task = Task(id="T-3", title="Fix src/api/users.py", state=State.QUEUED, labels=("api",),
                body="See `docs/guide.md`, the README.md and https://example.com/x.py; not ../etc/passwd.\n"
                     "Also touch web/ and version 1.2 (no path).")
    assert paths_named(task.title, task.body) == (
        "src/api/users.py", "docs/guide.md", "README.md", "web/", "web")
    facts = facts_for(task, changed=["lib/core.c"])
    assert facts.paths[0] == "lib/core.c" and facts.labels == ("api",)


# --- into the prompt: budgets ----------------------------------------------------------


TASK = Task(id="T-1", title="Work on src/api/users.py", state=State.RUNNING, labels=("ui",))


def prompt_with(documents, budget: int | None = None):
    _, given = for_prompt(documents, facts_for(TASK))
    return build_prompt(TASK, attempt=1, branch="factory/T-1", dependencies=[], feedback=None,
                        documents=given, documents_budget=budget)


def test_each_document_stays_within_its_own_budget_and_says_it_was_cut() -> None:
    capped = doc("api.md", "when: [src/api/**]\nbudget: 2000", "# API\n" + "rule line\n" * 1000)
    small = doc("small.md", body="# Small\nwhole\n")
    built = prompt_with([capped, small])
    shown = {item.name: item for item in built.documents}
    assert [item.name for item in built.documents] == ["api.md", "small.md"]
    assert shown["api.md"].shown <= 2000 and not shown["api.md"].whole
    assert shown["api.md"].size == len(capped.body.encode())
    assert shown["small.md"].whole
    assert "[`api.md` was cut here: " in built.text
    assert built.left_out == ()


def test_over_the_prompt_budget_the_least_specific_go_first_and_are_named() -> None:
    # Ten always-documents of 3 KB after one that applies by path.
    documents = [doc("api.md", "when: [src/api/**]", "A" * 3000)]
    documents += [doc(f"always-{n}.md", body=f"{n}" * 3000) for n in range(10)]
    built = prompt_with(documents, budget=12_000)
    kept = [item.name for item in built.documents]
    assert kept[0] == "api.md"  # the specific one stays
    assert kept == ["api.md", *[f"always-{n}.md" for n in range(len(kept) - 1)]]  # from the first, in order
    assert built.left_out == tuple(f"always-{n}.md" for n in range(len(kept) - 1, 10))
    assert all(item.shown >= MIN_DOCUMENT_SHOWN for item in built.documents)
    section = built.text[built.text.index("## Living documents"):built.text.index("## How to work here")]
    assert len(section.encode()) <= 12_000
    left = re.search(r"Left out to keep this prompt short \(.*\): (.*)", built.text).group(1)
    assert left == ", ".join(f"`{name}`" for name in built.left_out)


def test_within_the_budget_small_documents_stay_whole_and_large_ones_share() -> None:
    documents = [doc("big-a.md", body="a" * 20_000), doc("big-b.md", body="b" * 20_000), doc("tiny.md", body="tiny\n")]
    built = prompt_with(documents, budget=20_000)
    shown = {item.name: item for item in built.documents}
    assert shown["tiny.md"].whole
    assert not shown["big-a.md"].whole and not shown["big-b.md"].whole
    assert abs(shown["big-a.md"].shown - shown["big-b.md"].shown) <= 4


def test_the_history_goes_last_by_its_budget() -> None:
    history = doc("history.md", "generated: true\nbudget: 500", "# Session history\n" + "entry\n" * 200)
    built = prompt_with([history, doc("rules.md", body="# Rules\n")])
    assert [item.name for item in built.documents] == ["rules.md", "history.md"]
    assert built.documents[1].shown <= 500 and not built.documents[1].whole


def test_a_small_prompt_budget_holds_the_section_names_and_all() -> None:
    documents = [doc(f"a-document-with-a-long-name-{n:02}.md", body="x" * 3000) for n in range(30)]
    built = prompt_with(documents, budget=1024)
    section = built.text[built.text.index("## Living documents"):built.text.index("## How to work here")]
    assert len(section.encode()) <= 1024
    assert built.documents == () and len(built.left_out) == 30
    assert section.rstrip().endswith("more") or section.rstrip().endswith("30 documents")
