"""One base, opened: the facade the CLI, the console and the engine share.

``FactorySession`` holds what working on a base takes: its config, the
execution log (and, for the console, a second read-only connection that
never waits behind writes), the operator (approve, cancel …) and the task
worktrees, each made once, on first use. On top of them it answers the
questions more than one front end asks: a task with everything about it, a
report of the worktrees, cleaning orphans, a task's diff. A front end never
builds these itself, so the CLI and the console cannot disagree.

No Textual; safe to share between threads (the log serialises its own
connection, and git runs in processes of its own).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from factory_tui.backends.base import FactoryBase
from factory_tui.backends.log import ExecutionLog, LogReader
from factory_tui.config import FactoryConfig, LogConfig
from factory_tui.errors import FactoryError, InvalidInput
from factory_tui.mail_model import Importance, MessageKind
from factory_tui.model import (
    ANSWERED_STATES,
    Action,
    Failure,
    FileDiff,
    NeverRuns,
    NewTask,
    State,
    Task,
    TaskDetail,
    Usage,
    WorktreeReport,
    WorktreeStatus,
    worktree_status,
)

# The operator, git and QA are imported where first used: a command that
# only reads the log (``factory plan list``) starts without them.
if TYPE_CHECKING:
    from factory_tui.artifacts_model import DocumentInfo, DocumentVersion, Landing, PromptDocument, RunRecord
    from factory_tui.backends.mail_git import SyncReport
    from factory_tui.backends.mail_ingest import IngestReport, MailIngest
    from factory_tui.backends.mail_log import MailCounts, MailItem, Rejected, ThreadPage
    from factory_tui.backends.mail_post import Handed, Sent
    from factory_tui.backends.mail_thread import RefusedFile, ThreadDetail
    from factory_tui.backends.operator import Operator, Outcome
    from factory_tui.backends.qa_checks import OnDemand
    from factory_tui.backends.qa_log import QaRun, ScenarioStats
    from factory_tui.backends.refresh import Refresh
    from factory_tui.backends.run_reader import RunFileReader
    from factory_tui.backends.run_retention import GcReport
    from factory_tui.backends.worktree_watch import Touched
    from factory_tui.backends.worktrees import Worktrees
    from factory_tui.mail_model import RequestState
    from factory_tui.qa_model import Gate, InvalidScenario, QaKind, Scenario, Verdict


@dataclass
class FactorySession:
    """A base's backends, opened on first use and closed together."""

    base: FactoryBase
    busy_timeout_ms: int | None = None
    _log: ExecutionLog | None = field(default=None, init=False, repr=False)
    _reader: LogReader | None = field(default=None, init=False, repr=False)
    _operator: Operator | None = field(default=None, init=False, repr=False)
    _config: FactoryConfig | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    # --- the parts -----------------------------------------------------------

    @property
    def config(self) -> FactoryConfig:
        if self._config is None:
            self._config = self.base.config()
        return self._config

    @property
    def log(self) -> ExecutionLog:
        with self._lock:
            if self._log is None:
                # The base's [log] synchronous: every writer of the log
                # commits with the durability the operator chose.
                self._log = ExecutionLog.open(
                    self.base.log_path, busy_timeout_ms=self.busy_timeout_ms,
                    synchronous=self._log_config().synchronous,
                )
            return self._log

    @property
    def reader(self) -> LogReader:
        """Read-only queries on a connection of their own (the console's
        long history scans never hold up its writes)."""
        with self._lock:
            if self._reader is None:
                self._reader = LogReader(self.base.log_path, synchronous=self._log_config().synchronous)
            return self._reader

    def _log_config(self) -> LogConfig:
        # Called under self._lock: the config property does not take it.
        return self.config.log

    @property
    def operator(self) -> Operator:
        log = self.log
        with self._lock:
            if self._operator is None:
                from factory_tui.backends.operator import Operator

                self._operator = Operator(self.base, log, worktrees=self._new_worktrees())
            return self._operator

    @property
    def worktrees(self) -> Worktrees:
        return self.operator.worktrees

    def _new_worktrees(self) -> Worktrees:
        from factory_tui.backends.worktrees import Worktrees

        return Worktrees.for_config(self.base.root, self.config)

    def open(self) -> None:
        """Open the log now (a front end does it off its screen's time)."""
        _ = self.log

    def close(self) -> None:
        with self._lock:
            for backend in (self._log, self._reader):
                if backend is not None:
                    backend.close()
            self._log = self._reader = None
            self._operator = None

    def __enter__(self) -> FactorySession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- questions more than one front end asks ------------------------------

    def task_detail(self, task_id: str) -> TaskDetail:
        log = self.log
        task = log.get_task(task_id)
        by_id = {t.id: t for t in log.get_tasks(task.depends_on)}
        return TaskDetail(
            task=task,
            dependencies=[by_id[d] for d in task.depends_on if d in by_id],
            dependents=log.dependents(task.id),
            # The history scans the events: on the reader's own connection, so
            # that operator actions do not wait for it.
            events=self.reader.task_history(task.id),
        )

    def worktree_report(
        self, *, with_changes: bool = True, reuse: bool = False, fresh_for: Collection[str] | None = None,
        only: Collection[str] | None = None,
    ) -> list[WorktreeReport]:
        """Every task worktree (git's list, and folders git does not know),
        what it is for by its task's state, and, with ``with_changes``, the
        lines it changed since it left the base branch. With ``reuse`` the
        changes of a worktree no agent works in are counted again only when
        its commits or index moved (``Worktrees.diff_stat``'s ``settled``);
        with ``fresh_for``, only those tasks' worktrees are counted again
        whatever their state, the others only if their commits or index
        moved (the Worktrees pane, told what changed); with ``only``, those
        tasks' worktrees alone. The list comes from
        git's files (backends/worktree_list.py): no git process for it, and
        without changes no GitPython either (a console's first frame)."""
        from factory_tui.backends.worktree_list import list_from_files

        # git's list read from its own files: a look every few seconds
        # while agents stream costs no git process (git is asked where only
        # it can say).
        infos = list_from_files(self.base.root)
        if infos is None:
            infos = self.worktrees.list()
        if only is not None:
            # Those tasks' worktrees alone (a pane told which changed).
            infos = [info for info in infos if info.task_id in only]
        tasks = {t.id: t for t in self.log.get_tasks([i.task_id for i in infos if i.task_id])}
        report = []
        for info in infos:
            task = tasks.get(info.task_id) if info.task_id else None
            row = WorktreeReport(
                task_id=info.task_id,
                status=worktree_status(task.state if task else None),
                branch=info.branch,
                path=str(info.path),
                exists=info.exists,
                started_at=task.started_at if task else None,
                progress=task.progress if task else None,
            )
            if with_changes and info.exists and info.task_id:
                try:
                    if fresh_for is not None:
                        settled = info.task_id not in fresh_for
                    else:
                        settled = reuse and (task is None or task.state is not State.RUNNING)
                    stat = self.worktrees.diff_stat(info.task_id, settled=settled)
                    row.added, row.removed = stat.added, stat.removed
                except FactoryError:
                    pass  # a worktree git cannot diff (broken by an agent) shows no counts
            report.append(row)
        return report

    def watch_worktrees(self, stop: threading.Event) -> Iterator[Touched]:
        """What git writes about the task worktrees, as it writes it, until
        ``stop`` is set (backends/worktree_watch.py)."""
        from factory_tui.backends.worktree_watch import watch_worktrees

        worktrees = self.worktrees
        return watch_worktrees(worktrees.common_dir, worktrees.base_branch, stop=stop)

    def orphans(self) -> list[WorktreeReport]:
        """The worktrees no task needs any more."""
        return [row for row in self.worktree_report(with_changes=False)
                if row.status is WorktreeStatus.ORPHANED]

    def clean(self, task_ids: list[str]) -> list[str]:
        """Remove these tasks' worktrees (work committed first); one line
        each of what was done."""
        return [self.operator.clean(task_id) for task_id in task_ids]

    def diff(self, task_id: str) -> list[FileDiff]:
        return self.worktrees.diff(task_id)

    # --- changes ------------------------------------------------------------------

    def apply(
        self, task_id: str, action: Action, *, actor: str, note: str | None = None, force: bool = False,
    ) -> Outcome:
        """``force``: approve a task in review although its required QA has
        not passed on its head (``note`` required: the override is logged)."""
        outcome = self.operator.apply(task_id, action, actor=actor, note=note, force=force)
        if outcome.task.state in ANSWERED_STATES:
            self._answer_requests()
        return outcome

    def _answer_requests(self) -> None:
        """A task that ended (or was re-queued after it failed) may answer
        a request: the reply goes now
        (the engine's loop tries again whatever fails here)."""
        try:
            self.answer_ended_requests()
        except (FactoryError, OSError):
            pass

    # --- QA on demand ------------------------------------------------------------

    def run_qa(self, task_id: str | None, names: Sequence[str] = (), *, actor: str) -> OnDemand:
        """Run QA now on the task's branch head (or the base branch's head
        without a task), recorded; blocks for as long as the scenarios take:
        call it off the event loop."""
        from factory_tui.backends.qa_checks import run_on_demand

        done = run_on_demand(self.base, self.log, self.worktrees, task_id=task_id, names=names, actor=actor)
        if task_id is not None and done.results:
            self._index_qa_outputs(task_id)
        return done

    def _index_qa_outputs(self, task_id: str) -> None:
        """What QA wrote into the task's run folder, into the run index (a
        failure leaves it to be read from the folder when asked for)."""
        from factory_tui.backends.run_index import index_run_files

        try:
            index_run_files(self.base, self.log, task_id, max(1, self.log.get_task(task_id).attempts))
        except (FactoryError, OSError):
            pass

    def set_priority(self, task_id: str, priority: int, *, actor: str) -> Task:
        return self.log.set_priority(task_id, priority, actor=actor)

    def add_task(self, new: NewTask, *, actor: str) -> Task:
        return self.log.add_task(new, actor=actor)

    def remove_dependency(self, task_id: str, depends_on: str, *, actor: str) -> Task:
        return self.log.remove_dependency(task_id, depends_on, actor=actor)

    # --- what needs the operator -----------------------------------------------

    def failures(self, task_ids: list[str] | None = None, *, until: int | None = None) -> dict[str, Failure]:
        """Why each failed task failed (its last ``failed`` event; ``until``:
        up to that event id)."""
        return self.log.failures(task_ids, until=until)

    def never_runs(self, task_ids: list[str] | None = None) -> dict[str, NeverRuns]:
        """The waiting tasks that can never run as the plan is."""
        return self.log.never_runs(task_ids)

    def usage(self, *, task_ids: list[str] | None = None, per_task: bool = True, until: int | None = None) -> Usage:
        """Cost and tokens, per task, today and in all (``until``: of the
        runs that ended up to that event id)."""
        return self.log.usage(task_ids=task_ids, per_task=per_task, until=until)

    # --- QA (console) -------------------------------------------------------------

    def qa_overview(self) -> tuple[list[Scenario | InvalidScenario], dict[str, ScenarioStats]]:
        """Every scenario file (read with the base's profiles; the invalid
        ones with why) and each scenario's record over its last runs."""
        from factory_tui.backends.agents import load_profiles
        from factory_tui.qa_scenarios import load_scenarios

        found = load_scenarios(self.base.qa_dir, root=self.base.root, profiles=load_profiles(self.config))
        return found, self.log.qa_stats()

    def qa_runs_of(self, scenario: str, *, limit: int = 500) -> list[QaRun]:
        """A scenario's runs, newest first."""
        return self.log.qa_runs(scenario=scenario, limit=limit)

    def qa_run(self, run_id: int) -> QaRun:
        run = self.log.qa_run(run_id)
        if run is None:
            raise InvalidInput(f"no QA run {run_id}")
        return run

    def qa_output_files(self, run: QaRun) -> list[Path]:
        return qa_output_files(self.base.root, run)

    def qa_report(self, task_id: str) -> list[QaRun]:
        """A task's latest result per scenario, by scenario name."""
        latest: dict[str, QaRun] = {}
        for run in self.log.qa_runs(task_id=task_id, limit=QA_REPORT_ROWS):
            latest.setdefault(run.result.scenario, run)
        return sorted(latest.values(), key=lambda run: run.result.scenario)

    def qa_latest(self) -> dict[str, dict[str, tuple[Verdict, Gate]]]:
        """Per task, the latest verdict of each scenario and its gate (what
        the QA column of the Plan and Worktrees shows)."""
        latest: dict[str, dict[str, tuple[Verdict, Gate]]] = {}
        for run in self.log.qa_runs(limit=QA_LATEST_ROWS):
            if run.task_id is not None:
                latest.setdefault(run.task_id, {}).setdefault(run.result.scenario, (run.result.verdict, run.result.gate))
        return latest

    def scenario_path(self, name: str) -> Path:
        from factory_tui.qa_scenarios import valid_name

        if not valid_name(name):
            raise InvalidInput(f"not a scenario name: {name!r}")
        return self.base.qa_dir / f"{name.removesuffix('.md')}.md"

    def scenario_text(self, name: str) -> str:
        """A scenario file's text (bytes that are not UTF-8 shown replaced)."""
        path = self.scenario_path(name)
        try:
            return path.read_bytes().decode("utf-8", errors="replace")
        except OSError as error:
            raise FactoryError(f"cannot read .factory/qa/{path.name}: {error.strerror or error}") from None

    def new_scenario(self, name: str, kind: QaKind) -> Path:
        """Write ``.factory/qa/NAME.md`` from the commented template of
        ``kind``, whole or not at all; refuses a name that exists."""
        from factory_tui.backends.agents import default_profile_name, load_profiles
        from factory_tui.backends.new_file import write_new_file
        from factory_tui.qa_model import QaKind
        from factory_tui.qa_scenarios import template, valid_name

        stem = name.strip().removesuffix(".md")
        if not valid_name(stem):
            raise InvalidInput(
                f"not a scenario name: {name!r} (letters, digits, '.', '_' and '-', "
                "starting with a letter or digit; not README or judge-prompt)"
            )
        profiles = load_profiles(self.config)
        judge = "demo" if "demo" in profiles else default_profile_name(self.config, profiles)
        path = self.base.qa_dir / f"{stem}.md"
        write_new_file(path, template(QaKind(kind), stem, judge=judge), shown=f".factory/qa/{stem}.md")
        return path

    # --- run artifacts ----------------------------------------------------------

    def runs_of(self, task_id: str) -> list[RunRecord]:
        """A task's runs, newest first, each with its figures and its files
        as they are now (runs the log did not index yet are indexed from
        their folders). UnknownTask for a task the log does not hold."""
        from factory_tui.backends.run_index import runs_of

        return runs_of(self.base, self.log, task_id)

    def run_file(self, task_id: str, attempt: int, name: str, *, folder: str | None = None) -> Path:
        """Where a run's file is: ``name`` as its run lists it
        (``output.raw`` is the compressed file once retention compressed
        it). ``folder``: a run set aside (``2.stopped``) instead of the
        attempt's own. InvalidInput for a run or file that is not there, a
        link or a FIFO, or a raw output retention dropped."""
        from factory_tui.backends.run_files import run_file

        return run_file(self.base, self.log, task_id, attempt, name, folder=folder)

    def open_run_file(self, task_id: str, attempt: int, name: str, *, folder: str | None = None) -> RunFileReader:
        """A reader of a run's file a window of lines at a time
        (``line_count()``, ``lines(start, count)``), compressed or not; call
        it from a worker, and close it when done."""
        from factory_tui.backends.run_files import open_run_file

        return open_run_file(self.base, self.log, task_id, attempt, name, folder=folder)

    def collect_runs(self, *, apply: bool) -> GcReport:
        """``[artifacts] keep_runs`` applied to every run (``apply``) or only
        planned: what it frees (``factory artifacts gc``)."""
        from factory_tui.backends.run_retention import collect

        artifacts = self.config.artifacts
        return collect(self.base, self.log, keep_runs=artifacts.keep_runs, old_raw=artifacts.old_raw, apply=apply)

    # --- living documents (backends/living_documents.py) ---------------------------

    def documents(self) -> list[DocumentInfo]:
        """Every living document: title, when it last changed (its last
        commit, or its file's time while uncommitted), size, how many
        prompts included it, landings since it changed and whether that
        makes it stale, whether the factory writes it, what is wrong with it."""
        from factory_tui.backends.living_documents import document_infos

        return document_infos(self.base, self.log, self.config)

    def document_path(self, name: str) -> Path:
        """Where a living document is, for the operator's editor
        (InvalidInput for a bad or unknown name)."""
        from factory_tui.backends.living_documents import find_document

        return self.base.artifacts_dir / find_document(self.base, self.log, name).name

    def document_body(self, name: str) -> str:
        """A document's text after its front matter (what a prompt shows
        of it); one whose front matter cannot be read, whole (to see why)."""
        from factory_tui.backends.living_documents import find_document

        document = find_document(self.base, self.log, name)
        return self.document_text(name) if document.problem else document.body

    def document_text(self, name: str) -> str:
        """A document's whole text (InvalidInput for a bad or unknown name)."""
        from factory_tui.backends.living_documents import document_text

        return document_text(self.base, self.log, name)

    def document_history(self, name: str) -> list[DocumentVersion]:
        """The commits that changed a document, newest first."""
        from factory_tui.backends.living_documents import document_history

        return document_history(self.base, self.log, name)

    def document_diff(self, name: str, commit: str) -> str:
        """What ``commit`` (one of its history's, or a start of one) changed
        in the document, as a unified diff."""
        from factory_tui.backends.living_documents import document_diff

        return document_diff(self.base, self.log, name, commit)[1]

    def propose_refresh(self, *, actor: str | None = None) -> Refresh:
        """Propose the task that brings the living documents up to date now
        (the operator's key); one open already is returned instead, never a
        second made."""
        from factory_tui.actors import actor_name
        from factory_tui.backends.refresh import propose_refresh

        return propose_refresh(self.base, self.log, actor=actor or actor_name("console"))

    def prompt_documents(self, task_id: str, attempt: int | None = None) -> list[PromptDocument]:
        """Which documents (and versions, and how much of each) the prompt
        of ``task_id``'s ``attempt`` (every attempt: None) included."""
        self.log.get_task(task_id)  # UnknownTask for an id the log does not hold
        return self.log.prompt_documents(task_id, attempt)

    def landings(self, limit: int = 100) -> list[Landing]:
        """The session history, newest first."""
        return self.log.landings(limit=limit)

    # --- mail ------------------------------------------------------------------

    def mail_ingest(self, *, report: Callable[[str], None] | None = None) -> MailIngest:
        """What takes this base's mail into its log (backends/mail_ingest.py)."""
        from factory_tui.backends.mail_ingest import MailIngest

        return MailIngest(self.base, self.log, self.config, report=report)

    def mail_catch_up(self) -> IngestReport:
        """Take every message file of the mailbox and the sources into the
        log (the console calls it in a worker when no engine runs)."""
        return self.mail_ingest().catch_up()

    def watch_mail(self, stop: threading.Event, *, report: Callable[[str], None] | None = None,
                   caught_up: threading.Event | None = None) -> None:
        """Catch up (then set ``caught_up``), then follow the mailbox and the
        sources until ``stop`` is set (blocks: run it in a worker thread)."""
        self.mail_ingest(report=report).watch(stop, caught_up=caught_up)

    # What the Mail pane reads (thin: the log answers).

    def mail_thread_page(self, limit: int, words: Sequence[str] = ()) -> ThreadPage:
        """The newest ``limit`` threads (those holding every word of
        ``words``) and how many there are in all."""
        return self.log.mail_thread_page(limit, words)

    def mail_thread(self, thread: str) -> list[MailItem]:
        """A thread's messages, oldest first."""
        return list(reversed(self.log.mail_messages(thread=thread)))

    def mail_thread_detail(self, thread: str) -> ThreadDetail:
        """A thread's messages, oldest first, with our messages' deliveries
        and the states of the tasks its requests became (the thread screen)."""
        from factory_tui.backends.mail_thread import thread_detail

        return thread_detail(self.log, thread)

    def mail_refused_file(self, rejected: Rejected) -> RefusedFile:
        """Where a refused file is now and whether it shows as text."""
        from factory_tui.backends.mail_thread import refused_file

        return refused_file(self.base, rejected)

    def mail_counts(self) -> MailCounts:
        return self.log.mail_counts()

    def mail_rejected(self, limit: int | None = None) -> list[Rejected]:
        """Files refused as no message, the latest first."""
        return self.log.mail_rejected(limit)

    def send_mail(self, to: Sequence[str], subject: str, body: str, *, kind: MessageKind = MessageKind.NOTE,
                  importance: Importance = Importance.NORMAL, ack_required: bool = False, actor: str) -> Sent:
        """A new message to peers (or ourselves), written to our outbox and
        delivered (backends/mail_post.py). An agent's ``from`` is
        ``<factory>/<task>``. InvalidInput for a bad address, subject or a
        factory that is no peer, before anything is written."""
        from factory_tui.backends.mail_post import our_address, send
        from factory_tui.backends.mail_requests import sender_for
        from factory_tui.mail_model import InvalidMessage, new_message

        config = self.config
        our_address(config)
        if not to:
            raise InvalidInput("a message needs at least one recipient (--to PEER)")
        try:
            message = new_message(sender_for(config, actor), list(to), subject, body,
                                  kind=MessageKind(kind), importance=Importance(importance),
                                  ack_required=ack_required)
        except InvalidMessage as error:
            raise InvalidInput(f"the message cannot be sent: {error}") from None
        if message.kind not in (MessageKind.NOTE, MessageKind.REQUEST):
            raise InvalidInput(f"a new message is a note or a request, not {message.kind}: reply to answer one")
        return send(self.base, self.log, message, config=config)

    def reply_mail(self, key: str, body: str, *, actor: str, state: RequestState | None = None) -> Sent:
        """A reply in the thread of the message ``key`` (its id or a unique
        start of it), to its sender."""
        from factory_tui.backends.mail_requests import reply, sender_for

        if not body.strip():
            raise InvalidInput("a reply needs a body")
        item = self.log.mail_message(key)
        return reply(self.base, self.log, item, body, sender=sender_for(self.config, actor), state=state)

    def ack_mail(self, key: str, *, actor: str) -> Sent:
        """Acknowledge the message ``key``: an ``ack`` goes back to its
        sender. Refused for our own message, an ack, or one acknowledged
        already."""
        from factory_tui.backends.mail_requests import reply, sender_for
        from factory_tui.mail_model import MessageKind

        item = self.log.mail_message(key)
        if item.ours:
            raise InvalidInput(f"{item.key} is our own message: only a message we received is acknowledged")
        if item.kind == MessageKind.ACK:
            raise InvalidInput(f"{item.key} is an ack itself: an ack is not acknowledged")
        if item.acked_at is not None:
            raise InvalidInput(f"{item.key} was acknowledged already")
        return reply(self.base, self.log, item, "Acknowledged.", sender=sender_for(self.config, actor),
                     kind=MessageKind.ACK)

    def task_from_request(self, key: str, *, actor: str) -> Task:
        """The request ``key`` becomes a queued task linked to it; a reply
        ``accepted`` with the task's id goes back at once."""
        from factory_tui.backends.mail_requests import task_from_request

        return task_from_request(self.base, self.log, key, actor=actor)

    def decline_request(self, key: str, note: str, *, actor: str) -> Sent:
        """Answer the request ``key`` with ``rejected`` and ``note``."""
        from factory_tui.backends.mail_requests import decline

        return decline(self.base, self.log, key, note, actor=actor)

    def mark_mail_read(self, keys: Sequence[str], *, actor: str) -> int:
        """Mark messages read; how many were unread."""
        return self.log.mark_read(keys, actor)

    def retry_undelivered(self) -> list[Handed]:
        """Deliver again every message whose delivery failed."""
        from factory_tui.backends.mail_post import retry_undelivered

        return retry_undelivered(self.base, self.log, config=self.config)

    def record_sync(self, report: SyncReport) -> None:
        """What a git sync says of our pending deliveries, in the log."""
        from factory_tui.backends.mail_post import record_sync

        record_sync(self.log, report, report.started)

    def mail_round(self, *, retry: bool = True) -> list[str]:
        """The engine's round of mail work: requests by policy, outcomes of
        ended tasks, and (``retry``) failed deliveries again; the lines to
        report."""
        from factory_tui.backends.mail_requests import take_by_policy

        lines = [f"mail: a request became {task.id} ({task.state}): {task.title}"
                 for task in take_by_policy(self.base, self.log)]
        lines += [f"mail: answered {sent.message.in_reply_to}: {sent.message.state} ({sent.message.task})"
                  for sent in self.answer_ended_requests()]
        if retry:
            lines += [f"mail: delivery to {item.factory} {item.state}" + (f": {item.error}" if item.error else "")
                      for item in self.retry_undelivered()]
        return lines

    def answer_ended_requests(self) -> list[Sent]:
        """Send the outcome of every task made from a request that ended
        and has no outcome reply yet (idempotent)."""
        from factory_tui.backends.mail_requests import answer_ended

        return answer_ended(self.base, self.log)


# The task screen's report looks this far back for each scenario's latest.
QA_REPORT_ROWS = 500
# The QA column's first read: this many of the newest QA runs.
QA_LATEST_ROWS = 20_000


def qa_output_files(root: Path, run: QaRun) -> list[Path]:
    """What a QA run kept in its folder, to read: the command's output log,
    or a judge's prompt and answers (raw streams and JSON left out)."""
    if not run.result.output:
        return []
    folder = (root / run.result.output).resolve()
    if not folder.is_dir() or not folder.is_relative_to(root.resolve()):
        return []
    order = {"output.log": 0, "prompt.md": 1}
    found = [path for path in folder.iterdir()
             if path.is_file() and (path.name in order or (path.name.startswith("answer-") and path.suffix == ".txt"))]
    return sorted(found, key=lambda path: (order.get(path.name, 2), path.name))
