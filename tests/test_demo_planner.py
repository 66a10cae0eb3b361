"""The demo planner (issue 10 §4): a spec's headings and lists become a
plan, offline and deterministically. Plain tests of its functions; the
whole program runs as a real subprocess in tests/test_plan_draft.py."""

from __future__ import annotations

from factory_tui.demo_planner import draft, plan_items, revise
from factory_tui.plan_file import parse_plan

SPEC = """\
# Shopfront

A small web shop. This paragraph is prose: passed over.

## Catalogue

- List products (must)
  - show the price and the stock
  - twenty to a page
- Search products
- Product page, after "List products"
- Wishlist (won't)
  - maybe next year

## Checkout flow

1. [ ] Cart
   Items with quantities.
2. Payment (should) depends on `Cart`
3. Receipt email

| a table | is passed over |
|---|---|

## Operations

* Deploy script needs Receipt email
* Monitoring after the launch party
"""


def by_title(plan: str) -> dict:
    return {item.title: item for item in parse_plan(plan, "plan.md")}


def test_headings_group_and_label_the_tasks() -> None:
    items = by_title(draft(SPEC))
    assert list(items) == [
        "List products", "Search products", "Product page", "Cart", "Payment", "Receipt email",
        "Deploy script", "Monitoring after the launch party",
    ]
    assert items["List products"].labels == ("catalogue",)
    assert items["Payment"].labels == ("checkout-flow",)
    assert items["Monitoring after the launch party"].labels == ("operations",)


def test_nested_lists_and_indented_lines_are_the_body() -> None:
    items = by_title(draft(SPEC))
    assert items["List products"].body == "- show the price and the stock\n- twenty to a page"
    assert items["Cart"].body == "Items with quantities."
    assert items["Search products"].body == ""
    # A (won't) item is left out, its body with it.
    assert not any("next year" in item.body for item in items.values())


def test_order_within_a_section_and_dependency_words() -> None:
    items = by_title(draft(SPEC))
    handle = {title: item.label for title, item in items.items()}
    after = {title: [next(t for t, h in handle.items() if h == ref) for ref in item.after]
             for title, item in items.items()}
    assert after == {
        "List products": [],
        "Search products": ["List products"],  # the one before it in its section
        "Product page": ["List products"],  # named: "after ..." (quoted), not the one before
        "Cart": [],  # a section's first task waits for nothing
        "Payment": ["Cart"],  # named with `depends on` (backticks)
        "Receipt email": ["Payment"],
        "Deploy script": ["Receipt email"],  # named in another section: "needs ..."
        # Words that name no task stay in the title; the order holds.
        "Monitoring after the launch party": ["Deploy script"],
    }


def test_priorities_from_the_order_of_sections_and_markers() -> None:
    items = by_title(draft(SPEC))
    # Four headings: Catalogue is the 2nd (4 - 2 = 2), Checkout flow 1, Operations 0.
    assert {title: item.priority for title, item in items.items()} == {
        "List products": 22,  # (must) adds 20
        "Search products": 2,
        "Product page": 2,
        "Cart": 1,
        "Payment": 11,  # (should) adds 10
        "Receipt email": 1,
        "Deploy script": 0,
        "Monitoring after the launch party": 0,
    }


def test_it_is_deterministic_and_its_plan_parses() -> None:
    assert draft(SPEC) == draft(SPEC)
    assert len(parse_plan(draft(SPEC), "plan.md")) == 8


def test_items_before_any_heading_go_first() -> None:
    items = by_title(draft("- Set up the repository\n- Add a licence\n\n## Later\n- Polish\n"))
    assert (items["Set up the repository"].priority, items["Polish"].priority) == (1, 0)
    assert items["Set up the repository"].labels == ()
    assert items["Add a licence"].after == ["set-up-the-repository"]


def test_what_the_plan_format_would_misread_is_made_safe() -> None:
    spec = (
        "## API {v2}\n"
        "- Endpoint {#evil after=x} for [links](http://x)\n"
        "  - [ ] a checkbox in the body\n"
        "  - [RFC 7807] errors\n"
        "  ```\n"
        "  - [ ] inside code\n"
        "  ```\n"
        "- T 1\n"
    )
    items = parse_plan(draft(spec), "plan.md")
    assert [item.title for item in items] == ["Endpoint (#evil after=x) for [links](http://x)", "T 1"]
    assert items[0].labels == ("api-v2",)
    assert "\\[ ] a checkbox in the body" in items[0].body
    assert items[1].label == "item-2"  # a handle that would read as a task id is not used


def test_dependency_words_in_a_loop_keep_the_first() -> None:
    items = plan_items("- Alpha after Beta\n- Beta after Alpha\n")
    assert [(item.handle, item.after) for item in items] == [("alpha", ["beta"]), ("beta", [])]


def test_an_empty_spec_is_an_empty_plan() -> None:
    assert parse_plan(draft("# Just a title\n\nSome prose.\n"), "plan.md") == []


TASKS = [
    {"id": "T-1", "title": "List products", "state": "done", "priority": 22, "attempts": 1, "source": "draft:SPEC.md"},
    {"id": "T-2", "title": "Search products", "state": "failed", "priority": 2, "attempts": 2,
     "source": "draft:SPEC.md", "failure": "agent exited 1"},
    {"id": "T-3", "title": "Old gift cards", "state": "queued", "priority": 2, "attempts": 0, "source": "draft:SPEC.md"},
    {"id": "T-4", "title": "Cart", "state": "cancelled", "priority": 1, "attempts": 0, "source": "draft:SPEC.md"},
    {"id": "T-5", "title": "Product page", "state": "queued", "priority": 2, "attempts": 0, "source": "draft:SPEC.md"},
    {"id": "T-6", "title": "Someone else's", "state": "queued", "priority": 0, "attempts": 0, "source": "cli"},
]


def test_a_revision_proposes_new_tasks_cancellations_and_priorities() -> None:
    spec = "## Catalogue\n- List products\n- Search products\n- Product page\n- Reviews\n## Checkout\n- Cart\n- Payment\n"
    plan = revise(spec, TASKS, "draft:SPEC.md")
    items = parse_plan(plan, "plan.md", changes=True)
    new = [(item.title, item.after) for item in items if not item.is_change]
    # Reviews waits for the task Product page made (by id); Cart was
    # cancelled, so Payment waits for nothing; Cart is not made again.
    assert new == [("Reviews", ["T-5"]), ("Payment", [])]
    changes = [(item.task, item.change, item.priority if item.change == "priority" else None, item.body)
               for item in items if item.is_change]
    assert changes == [
        ("T-3", "cancel", None, "Its item is no longer in the spec."),
        ("T-2", "priority", -1,
         "It failed 2 times (last: agent exited 1); the rest of the plan goes first\nwhile the operator looks at it."),
    ]
    assert revise(spec, TASKS, "draft:SPEC.md") == plan


def test_a_revision_of_a_plan_in_step_with_its_spec_proposes_nothing() -> None:
    tasks = [dict(task, state="queued") for task in TASKS if task["id"] in ("T-1", "T-5")]
    plan = revise("- List products\n- Product page\n", tasks, "draft:SPEC.md")
    assert parse_plan(plan, "plan.md", changes=True) == []
    # A task that failed twice and is already below the rest gets nothing more.
    failed = [*tasks, {"id": "T-9", "title": "x", "state": "failed", "priority": -5, "attempts": 3, "source": "cli"}]
    assert parse_plan(revise("- List products\n- Product page\n", failed, "draft:SPEC.md"), changes=True) == []
