"""Every key of the console, once: one binding id per action.

A pane, a screen or the app that offers an action takes its binding from
here by id, so "approve" is the same key (and the same id in a user's
keymap) in the Plan, on the task screen, in the Worktrees pane, on the run
screen and in the diff. ``[console] keymap`` in factory.toml maps ids to
other keys (Textual's ``App.set_keymap``); ``?`` shows them by section.

No key means two things: ``j``/``k`` move in every list, so nothing else
takes them.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding, BindingType

from factory_tui.config import unknown_key


@dataclass(frozen=True, slots=True)
class Key:
    id: str
    keys: str
    action: str
    description: str
    section: str
    tooltip: str = ""
    show: bool = True
    # Checked before the focused widget sees the key (a dialog's key that a
    # text area would otherwise take, such as ctrl+e).
    priority: bool = False

    def binding(self, *, show: bool | None = None) -> Binding:
        return Binding(
            self.keys, self.action, self.description, show=self.show if show is None else show,
            id=self.id, tooltip=self.tooltip, priority=self.priority,
        )


# The sections of the help screen, in the order it shows them.
SECTIONS = ("Task", "Run", "QA", "Mail", "Transcript", "Diff", "Log", "Moving", "Pane", "Everywhere", "Dialog")

_KEYS = [
    # --- what the operator does to a task, wherever a task is under the cursor
    Key("task.approve", "a", "command('approve')", "Approve", "Task",
        "proposed → queued, or review → done (merges its branch)"),
    Key("task.requeue", "r", "command('requeue')", "Re-queue", "Task",
        "Run it again, with your feedback in the prompt"),
    Key("task.cancel", "x", "command('cancel')", "Cancel", "Task",
        "Drop it (asks first); a running agent is stopped, its work kept on the branch"),
    Key("task.hold", "h", "command('hold')", "Hold/release", "Task",
        "Park a queued task, or let a held one run", show=False),
    Key("task.priority-up", "plus,equals_sign", "command('priority_up')", "Priority +", "Task",
        "Runs sooner", show=False),
    Key("task.priority-down", "minus,underscore", "command('priority_down')", "Priority −", "Task",
        "Runs later", show=False),
    Key("task.open", "enter", "command('open')", "Open", "Task",
        "Its description, dependencies and history", show=False),
    Key("task.new", "n", "new_task", "New", "Task", "Add a task with a form", show=False),
    Key("task.drop-dependency", "u", "drop_dependency", "Drop dependency", "Task",
        "A task that can never run as it is: stop waiting for the dead task (asks first)"),
    Key("task.mark", "space", "toggle_mark", "Mark", "Task",
        "Mark or unmark the row; then a, r, x and h act on every marked task", show=False),
    Key("task.clear-marks", "escape", "clear_marks", "Clear marks", "Task",
        "Unmark every row (a filter that is open is cleared first)", show=False),
    # --- a task's run: its worktree, transcript and diff
    Key("run.open", "enter", "open_run", "Open run", "Run",
        "The live transcript and the diff against the base branch"),
    Key("run.shell", "o", "shell", "Shell", "Run",
        "A shell in the worktree (the console comes back when it exits)", show=False),
    Key("run.editor", "e", "editor", "Editor", "Run", "$EDITOR in the worktree", show=False),
    Key("run.transcript", "t", "tab('transcript')", "Transcript", "Run", "The agent's output"),
    Key("run.diff", "d", "tab('diff')", "Diff", "Run", "What changed against the base branch"),
    Key("worktrees.clean", "c", "clean", "Clean up", "Run",
        "Remove the orphaned worktrees (asks first; work is committed first)", show=False),
    Key("run.attempt", "p", "earlier_attempt", "Earlier attempt", "Run",
        "The transcripts of this task's attempts in turn, newest first", show=False),
    # --- quality assurance: the QA pane, its scenarios and runs, a task's QA
    Key("qa.run", "Q", "run_qa", "Run QA", "QA",
        "Run QA now: a task's scenarios on its branch head; in the QA pane, the scenario on the base branch",
        show=False),
    Key("qa.open", "enter", "open_scenario", "Open", "QA",
        "The scenario's file and its history; on a run, the run's output", show=False),
    Key("qa.edit", "e", "edit_scenario", "Edit", "QA", "Open the scenario file in $EDITOR"),
    Key("qa.new", "n", "new_scenario", "New scenario", "QA", "A new scenario file from the template"),
    # --- the Artifacts pane: living documents and the runs' files
    Key("artifacts.open", "enter", "open_artifact", "Open", "Artifacts",
        "A document rendered; on a run's file, its lines (read a window at a time)", show=False),
    Key("artifacts.edit", "e", "edit_document", "Edit", "Artifacts", "Open the document in $EDITOR"),
    Key("artifacts.history", "h", "document_history", "History", "Artifacts",
        "The commits that changed the document, and each version's diff"),
    Key("artifacts.refresh", "R", "refresh_documents", "Refresh task", "Artifacts",
        "Propose a task that brings the living documents up to date (approve it like any task)"),
    # --- mail: the Mail pane's threads and a thread's screen
    Key("mail.open", "enter", "open_thread", "Open", "Mail",
        "The thread: every message with its body (opening it marks them read)", show=False),
    Key("mail.reply", "r", "reply", "Reply", "Mail", "Answer the thread's latest message from a peer (a form)"),
    Key("mail.new", "n", "new_mail", "New message", "Mail", "Write to a peer (a form)"),
    Key("mail.task", "t", "task_from_request", "Task", "Mail",
        "Make the thread's waiting request a task (its sender hears it was accepted)"),
    Key("mail.ack", "A", "acknowledge", "Acknowledge", "Mail",
        "Acknowledge the message that asks for it (an ack goes back)", show=False),
    Key("mail.decline", "x", "decline", "Decline", "Mail",
        "Decline the thread's waiting request, with a note (a reply saying rejected)", show=False),
    Key("mail.page", "space", "page_down", "Page down", "Mail", "Scroll the thread a screenful on", show=False),
    # --- a run's transcript
    Key("transcript.search", "slash", "search", "Search", "Transcript",
        "Find a line (enter: next match; lower case matches any case)"),
    Key("transcript.next-match", "n", "next_match", "Next match", "Transcript", show=False),
    Key("transcript.previous-match", "N", "previous_match", "Previous match", "Transcript", show=False),
    Key("transcript.close-search", "escape", "close_search", "Close search", "Transcript", show=False),
    # --- the diff: files on the left, the selected file's patch on the right
    Key("diff.next-file", "right_square_bracket", "next_file", "Next file", "Diff"),
    Key("diff.previous-file", "left_square_bracket", "previous_file", "Previous file", "Diff", show=False),
    Key("diff.next-hunk", "right_curly_bracket", "next_hunk", "Next hunk", "Diff",
        "Scroll the patch to the next @@ hunk"),
    Key("diff.previous-hunk", "left_curly_bracket", "previous_hunk", "Previous hunk", "Diff", show=False),
    # --- the Log pane
    Key("log.follow", "end,G", "last", "Follow", "Log", "Jump to the newest event and follow"),
    # --- moving in any list
    Key("list.up", "up,k", "cursor_up", "Up", "Moving", show=False),
    Key("list.down", "down,j", "cursor_down", "Down", "Moving", show=False),
    Key("list.page-up", "pageup,ctrl+b", "page_up", "Page up", "Moving", show=False),
    Key("list.page-down", "pagedown,ctrl+f", "page_down", "Page down", "Moving", show=False),
    Key("list.first", "home,g", "first", "First row", "Moving", show=False),
    Key("list.last", "end,G", "last", "Last row", "Moving", show=False),
    # --- a pane's own
    Key("pane.filter", "slash", "filter", "Filter", "Pane", "Show only what matches"),
    Key("pane.clear-filter", "escape", "clear_filter", "Clear filter", "Pane", show=False),
    # --- everywhere
    Key("screen.back", "escape", "app.pop_screen", "Back", "Everywhere"),
    Key("app.help", "question_mark", "help", "Help", "Everywhere", "Keys for where you are"),
    Key("app.quit", "q", "quit", "Quit", "Everywhere", show=False),
    Key("app.zoom", "z", "zoom", "Zoom pane", "Everywhere",
        "Fill the screen with the focused pane, or back", show=False),
    # --- the note that goes with a re-queue (a text area: enter is a new line)
    Key("note.submit", "ctrl+s", "submit", "Submit", "Dialog", priority=True),
    Key("note.editor", "ctrl+e", "editor", "$EDITOR", "Dialog",
        "Write the note in your editor; it comes back here when the editor exits", priority=True),
    Key("note.cancel", "escape", "cancel", "Cancel", "Dialog"),
    # A form (a new task, a new scenario): created when it is complete.
    Key("form.create", "ctrl+s", "submit", "Create", "Dialog"),
    Key("form.cancel", "escape", "cancel", "Cancel", "Dialog"),
]
KEYS: dict[str, Key] = {key.id: key for key in _KEYS}


def bindings(*ids: str, show: dict[str, bool] | None = None) -> list[BindingType]:
    """The bindings of these ids; ``show`` overrides which reach the footer.
    Typed as Textual's ``BINDINGS`` lists are, so that a class can take it
    as its ``BINDINGS``."""
    show = show or {}
    return [KEYS[key_id].binding(show=show.get(key_id)) for key_id in ids]


# The pane keys (1…6) have ids of their own, made by the app from the
# pane registry: app.pane-1 and so on.
PANE_BINDING_PREFIX = "app.pane-"


def keymap_problem(keymap: dict[str, str], pane_numbers: range | tuple[int, ...] = range(1, 10)) -> str | None:
    """The complaint about the first binding id of a ``[console] keymap``
    that names no action, with the nearest id ("did you mean task.approve?"),
    or None. A misspelt id would otherwise be passed over without a word."""
    known = [*KEYS, *(f"{PANE_BINDING_PREFIX}{n}" for n in pane_numbers)]
    for binding_id in keymap:
        if binding_id not in known:
            return "[console] keymap: " + unknown_key(binding_id, known).replace("unknown key", "unknown binding id", 1)
    return None


def section_of(binding_id: str | None) -> str | None:
    key = KEYS.get(binding_id or "")
    if key is not None:
        return key.section
    if binding_id and binding_id.startswith(PANE_BINDING_PREFIX):
        return "Everywhere"
    return None
