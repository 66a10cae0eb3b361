"""The console's small modal screens: confirm, choose, ask for a note (a
few lines, or written in $EDITOR), and the new-task form.

Text from outside (task titles) is shown through ``Content``/``Static``
with markup off, so a title cannot style or break the dialog. A dialog that
counts says "1 agent" or "2 agents" (``counted``), never a noun with
"(s)" tacked on.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import TypeVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static, TextArea

from factory_tui.backends.agents import load_profiles
from factory_tui.context import console
from factory_tui.errors import FactoryError
from factory_tui.keys import bindings
from factory_tui.model import (
    CREATABLE_STATES,
    NewTask,
    State,
    Task,
    normalize_task_id,
    parse_priority,
    split_labels,
)
from factory_tui.text import literal
from factory_tui.worktree_shell import editor_argv, operator_environment, runnable

# The new-task form's profile choice that sets none: the task runs with the
# base's default profile, whichever that is when it runs.
DEFAULT_PROFILE = ""


def counted(count: int, one: str, many: str | None = None) -> str:
    """``1 agent``, ``2 agents``: a count with its noun in the right form."""
    return f"{count} {one if count == 1 else (many or one + 's')}"


class ConfirmDialog(ModalScreen[bool]):
    """Yes or no to something that cannot be undone."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm.no"),
    ]

    def __init__(self, question: str, detail: str = "", *, yes: str = "Yes") -> None:
        super().__init__(classes="dialog-screen")
        self.question = question
        self.detail = detail
        self.yes_label = yes

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(literal(self.question), classes="dialog-title", markup=False)
            if self.detail:
                yield Static(literal(self.detail), classes="dialog-detail", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button(f"{self.yes_label} (y)", id="yes", variant="error")
                yield Button("No (n)", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


class ChoiceDialog(ModalScreen[str | None]):
    """One of a few answers, each with a button and a key."""

    def __init__(self, question: str, detail: str, *, choices: list[tuple[str, str, str]]) -> None:
        """``choices``: (answer, button label, key) in order."""
        super().__init__(classes="dialog-screen")
        self.question = question
        self.detail = detail
        self.choices = choices

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(literal(self.question), classes="dialog-title", markup=False)
            yield Static(literal(self.detail), classes="dialog-detail", markup=False)
            with Horizontal(classes="dialog-buttons"):
                for n, (answer, label, _key) in enumerate(self.choices):
                    yield Button(label, id=f"choice-{answer}", variant="primary" if n == 0 else "default")

    def on_mount(self) -> None:
        self.query(Button).last().focus()

    def on_key(self, event) -> None:
        for answer, _label, key in self.choices:
            if event.key == key:
                event.stop()
                self.dismiss(None if answer == "cancel" else answer)
                return

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        answer = (event.button.id or "").removeprefix("choice-")
        self.dismiss(None if answer == "cancel" else answer)


class NoteDialog(ModalScreen[str | None]):
    """A few lines of text, such as the feedback that goes with a re-queue:
    enter starts a new line, ctrl+s (or the button) submits, and ctrl+e
    writes it in the operator's $EDITOR (the console waits for the editor,
    then the text comes back here to be checked and submitted)."""

    BINDINGS = bindings("note.submit", "note.editor", "note.cancel")

    def __init__(self, title: str, detail: str = "", *, placeholder: str = "", submit: str = "OK") -> None:
        super().__init__(classes="dialog-screen")
        self.title_text = title
        self.detail = detail
        self.placeholder = placeholder
        self.submit_label = submit

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog note"):
            yield Static(literal(self.title_text), classes="dialog-title", markup=False)
            if self.detail:
                yield Static(literal(self.detail), classes="dialog-detail", markup=False)
            yield TextArea(id="note", soft_wrap=True, placeholder=self.placeholder)
            yield Static("enter: new line   ctrl+e: write it in $EDITOR", classes="dialog-hint", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button(f"{self.submit_label} (ctrl+s)", id="ok", variant="primary")
                yield Button("Cancel (esc)", id="cancel")

    @property
    def text_area(self) -> TextArea:
        return self.query_one("#note", TextArea)

    def on_mount(self) -> None:
        self.text_area.focus()

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#ok")
    def action_submit(self) -> None:
        self.dismiss(self.text_area.text)

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)

    def action_editor(self) -> None:
        write_in_editor(self, self.text_area)


def write_in_editor(screen: ModalScreen, area: TextArea) -> None:
    """The text of ``area`` in $VISUAL or $EDITOR, in the operator's
    environment (as ``e`` in a worktree): written to a temporary file, the
    console suspended while the editor runs, the file read back."""
    app = screen.app
    env = operator_environment(console(screen).base.root)
    try:
        argv = runnable(editor_argv(env, target=None), env)
    except FactoryError as error:
        screen.notify(f"{literal(str(error))}; the text is as it was", severity="error", markup=False)
        return
    with tempfile.TemporaryDirectory(prefix="factory-note-") as folder:
        path = Path(folder) / "note.md"
        path.write_text(area.text, encoding="utf-8")
        try:
            with app.suspend():
                done = subprocess.run([*argv, str(path)], env=env, check=False)
        except Exception as error:  # no terminal to hand over, or the program would not start
            screen.notify(literal(f"cannot open {argv[0]}: {error}; the text is as it was"), severity="error",
                          markup=False)
            return
        if done.returncode != 0:
            screen.notify(f"{literal(argv[0])} exited {done.returncode}; the text is as it was",
                          severity="warning", markup=False)
            return
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as error:
            screen.notify(literal(f"cannot read the text back: {error}"), severity="error", markup=False)
            return
    # An editor ends a file with a newline; the text does not need it.
    area.load_text(text.removesuffix("\n"))
    area.focus()


FormResult = TypeVar("FormResult")


class FormDialog(ModalScreen[FormResult]):
    """A form that writes what it asks for itself (through the session, in
    a worker) and stays open with what was typed when that is refused: the
    error is shown in its ``#form-error`` line."""

    BINDINGS = bindings("form.create", "form.cancel")

    def show_error(self, message: str) -> None:
        self.query_one("#form-error", Static).update(literal(message))

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)


class NewTaskDialog(FormDialog[Task | None]):
    """The new-task form. It writes the task itself (through the session,
    in a worker) and stays open until the task is really written, so that
    nothing typed is lost when the log refuses it; it is dismissed with the
    new task."""

    def __init__(self, known_ids: set[str] | None = None) -> None:
        super().__init__(classes="dialog-screen")
        self.known_ids = known_ids

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog new-task"):
            yield Static("New task", classes="dialog-title")
            yield Label("Title")
            yield Input(id="title", placeholder="What should be built")
            with Horizontal(classes="form-row"):
                with Vertical():
                    yield Label("Priority (higher first)")
                    yield Input("0", id="priority")
                with Vertical():
                    yield Label("Depends on (ids)")
                    yield Input(id="after", placeholder="T-3, T-7")
                with Vertical():
                    yield Label("Starts as")
                    yield Select(
                        [(state.value, state.value) for state in CREATABLE_STATES],
                        value=State.QUEUED.value,
                        allow_blank=False,
                        id="state",
                    )
                with Vertical():
                    yield Label("Agent profile")
                    yield Select(
                        [("default", DEFAULT_PROFILE), *((literal(name), name) for name in self._profiles())],
                        value=DEFAULT_PROFILE,
                        allow_blank=False,
                        id="profile",
                    )
            yield Label("Labels (comma or space separated)")
            yield Input(id="labels", placeholder="docs, ui")
            yield Label("Description (markdown)")
            yield TextArea(id="body", soft_wrap=True)
            yield Static("", id="form-error", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Create (ctrl+s)", id="create", variant="primary")
                yield Button("Cancel (esc)", id="cancel")

    def _profiles(self) -> list[str]:
        """The base's agent profiles by name (factory.toml's, else the
        built-in ones); none when factory.toml cannot be read (the form
        still works, with the default)."""
        try:
            return list(load_profiles(console(self).session.config))
        except FactoryError:
            return []

    def on_mount(self) -> None:
        self.query_one("#title", Input).focus()

    @on(Input.Submitted, "#title")
    @on(Button.Pressed, "#create")
    def action_submit(self) -> None:
        try:
            new_task = self._read_form()
        except FactoryError as error:
            self.show_error(str(error))
            return
        self.show_error("")
        self.create(new_task)

    @work(thread=True, exclusive=True, group="new-task", exit_on_error=False)
    def create(self, new_task: NewTask) -> None:
        context = console(self)
        try:
            task = context.session.add_task(new_task, actor=context.actor)
        except FactoryError as error:
            # The form stays open with everything typed in it.
            self.app.call_from_thread(self.show_error, str(error))
            return
        self.app.call_from_thread(self.dismiss, task)

    def _read_form(self) -> NewTask:
        from factory_tui.model import check_title

        title = check_title(self.query_one("#title", Input).value)
        priority = parse_priority(self.query_one("#priority", Input).value or "0")
        after_text = self.query_one("#after", Input).value.replace(",", " ")
        after = tuple(normalize_task_id(word) for word in after_text.split())
        if self.known_ids is not None:
            unknown = [ref for ref in after if ref not in self.known_ids]
            if unknown:
                raise FactoryError(f"no such task: {unknown[0]}")
        state = State(str(self.query_one("#state", Select).value))
        body = self.query_one("#body", TextArea).text
        profile = self.query_one("#profile", Select).value
        labels = split_labels(self.query_one("#labels", Input).value)
        return NewTask(
            title=title, body=body, priority=priority, state=state, after=after, source="console",
            profile=profile if isinstance(profile, str) and profile != DEFAULT_PROFILE else None,
            labels=labels,
        )
