"""Background tasks: run a plain function in a QThread and hear about it through Qt signals.

The core's long functions take two plain callbacks, ``on_progress(event)`` and
``should_stop() -> bool``. A :class:`TaskThread` runs such a function
``fn(on_progress, should_stop)`` as its ``run`` (a QThread without an event loop; the thread
object itself lives in the GUI thread and is deleted there once it has finished)::

    task = start_task(lambda on_progress, should_stop: heavy(on_progress=on_progress,
                                                             should_stop=should_stop),
                      on_progress=bar.update, on_finished=show, on_failed=report, name="train")
    ...
    task.request_stop()          # should_stop() now returns True

Results and errors cross the thread as objects: ``finished(result)`` or ``failed(exception)``,
exactly one of the two, then ``done()``. They are re-emitted by a :class:`Task` that lives in the
thread that started the task (the GUI thread), so callbacks - lambdas included - always run in the
GUI thread and may touch widgets.

:class:`TaskRunner` keeps a reference to every running task (a QThread garbage-collected while
running crashes the process) and can stop and wait for all of them (window close, test tear-down).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QCoreApplication, QObject, QThread, Signal, Slot

log = logging.getLogger(__name__)

ProgressFn = Callable[[Any], None]
StopFn = Callable[[], bool]
TaskFn = Callable[[ProgressFn, StopFn], Any]

#: Every QThread started here and not yet finished (tests assert this is empty after each test).
_LIVE_THREADS: set[QThread] = set()
_LIVE_LOCK = threading.Lock()


def live_threads() -> list[str]:
    """Names of the QThreads started by this module that have not finished yet."""
    with _LIVE_LOCK:
        alive = []
        for thread in list(_LIVE_THREADS):
            try:
                if thread.isRunning():
                    alive.append(thread.objectName())
            except RuntimeError:  # C++ object already deleted
                _LIVE_THREADS.discard(thread)
        return alive


class TaskThread(QThread):
    """A QThread whose ``run`` calls ``fn(report, should_stop)`` itself, without an event loop.

    No object but this one takes part, and it lives in the thread that made it (the GUI thread),
    so nothing is ever moved between threads or destroyed in the ending one. (An earlier design
    ran a worker QObject inside the thread and moved it back to the GUI thread when it ended; that
    ``moveToThread`` takes Qt's locks of both threads while holding the GIL, and once in a while
    deadlocked against a GUI thread waiting for the GIL inside Qt.)

    Signals, emitted from the running thread and queued to receivers in other threads:
    ``progress(object)`` for every event ``fn`` reports, then exactly one of
    ``result_ready(object)`` (the return value) or ``error_raised(object)`` (the exception), then
    QThread's own ``finished()``.
    """

    progress = Signal(object)
    result_ready = Signal(object)
    error_raised = Signal(object)

    def __init__(self, fn: TaskFn, name: str = "") -> None:
        super().__init__()
        self._fn = fn
        self.name = name or getattr(fn, "__name__", "task")
        self.setObjectName(f"rooftop-{self.name}")
        self.stop_event = threading.Event()

    def should_stop(self) -> bool:
        return self.stop_event.is_set()

    def _report(self, event: Any) -> None:
        self.progress.emit(event)

    def run(self) -> None:  # runs in the new thread
        try:
            result = self._fn(self._report, self.should_stop)
        except BaseException as exc:  # noqa: BLE001 - errors cross the thread as objects
            log.debug("task %s failed: %r", self.name, exc)
            self.error_raised.emit(exc)
        else:
            self.result_ready.emit(result)
        finally:
            self._fn = None  # drop what the task holds (a model, images) as soon as it ends


class Task(QObject):
    """Handle of one running :class:`TaskThread`, living in the thread that started it.

    Its signals mirror the thread's (``result_ready`` as ``finished``, ``error_raised`` as
    ``failed``, QThread's ``finished`` as ``done``) but are emitted in the starting (GUI) thread.
    """

    progress = Signal(object)
    finished = Signal(object)
    failed = Signal(object)
    done = Signal()

    def __init__(self, thread: TaskThread, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.thread = thread
        self.name = thread.name
        self.started_at = time.monotonic()
        self._stop_event = thread.stop_event
        self._stop_requested = False
        self._done = False
        self.result: Any = None
        self.error: BaseException | None = None
        # Slots of this object (living in the GUI thread) get queued calls from the task's thread;
        # QThread.finished comes last, after everything the task emitted.
        thread.progress.connect(self._on_progress)
        thread.result_ready.connect(self._on_finished)
        thread.error_raised.connect(self._on_failed)
        thread.finished.connect(self._on_thread_finished)

    # ----------------------------------------------------------------- control
    def request_stop(self) -> None:
        self._stop_requested = True
        self._stop_event.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop_requested

    def is_running(self) -> bool:
        return not self._done

    def wait(self, timeout_ms: int = 30_000) -> bool:
        """Block until the thread ends (then deliver its pending signals); True if it ended."""
        if self._done:
            return True
        try:
            ok = self.thread.wait(timeout_ms)
        except RuntimeError:  # thread object already deleted: it has finished
            ok = True
        app = QCoreApplication.instance()
        deadline = time.monotonic() + 2.0
        # Deliver the queued finished/failed/done signals so callers see a settled state.
        while ok and not self._done and app is not None and time.monotonic() < deadline:
            app.processEvents()
        return ok

    # ----------------------------------------------------------------- relays
    @Slot(object)
    def _on_progress(self, event: Any) -> None:
        self.progress.emit(event)

    @Slot(object)
    def _on_finished(self, result: Any) -> None:
        self.result = result
        self.finished.emit(result)

    @Slot(object)
    def _on_failed(self, error: Any) -> None:
        self.error = error
        self.failed.emit(error)

    @Slot()
    def _on_thread_finished(self) -> None:
        self._done = True
        self.done.emit()


class TaskRunner(QObject):
    """Starts tasks, keeps them referenced while they run, and stops/waits for all of them."""

    task_started = Signal(object)
    task_done = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._tasks: list[Task] = []

    def start(
        self,
        fn: TaskFn,
        *,
        on_progress: ProgressFn | None = None,
        on_finished: Callable[[Any], None] | None = None,
        on_failed: Callable[[BaseException], None] | None = None,
        on_done: Callable[[], None] | None = None,
        name: str = "",
    ) -> Task:
        """Run ``fn(on_progress, should_stop)`` in a new QThread; callbacks run in this thread."""
        thread = TaskThread(fn, name=name)
        task = Task(thread)
        task.done.connect(lambda t=task: self._forget(t))
        if on_progress is not None:
            task.progress.connect(on_progress)
        if on_finished is not None:
            task.finished.connect(on_finished)
        if on_failed is not None:
            task.failed.connect(on_failed)
        if on_done is not None:
            task.done.connect(on_done)
        self._tasks.append(task)
        with _LIVE_LOCK:
            _LIVE_THREADS.add(thread)
        thread.start()
        self.task_started.emit(task)
        return task

    def _forget(self, task: Task) -> None:
        if task in self._tasks:
            self._tasks.remove(task)
        with _LIVE_LOCK:
            _LIVE_THREADS.discard(task.thread)
        # The thread object lives in this (GUI) thread and its run() has returned: it is
        # destroyed here, never in the finished thread.
        task.thread.deleteLater()
        self.task_done.emit(task)

    def tasks(self) -> list[Task]:
        """Tasks started here that have not finished yet."""
        return list(self._tasks)

    def is_busy(self, name: str | None = None) -> bool:
        return any(name is None or t.name == name for t in self._tasks)

    def stop_all(self, timeout_ms: int = 10_000) -> bool:
        """Ask every task to stop, then wait for all; True if all ended within ``timeout_ms``."""
        tasks = list(self._tasks)
        for task in tasks:
            task.request_stop()
        return self.wait_all(timeout_ms)

    def wait_all(self, timeout_ms: int = 30_000) -> bool:
        """Wait for every running task (without asking it to stop); True if all ended."""
        deadline = time.monotonic() + timeout_ms / 1000
        ok = True
        for task in list(self._tasks):
            left = max(0, int((deadline - time.monotonic()) * 1000))
            ok = task.wait(left) and ok
        app = QCoreApplication.instance()
        if app is not None:
            app.processEvents()
        return ok


_default_runner: TaskRunner | None = None


def default_runner() -> TaskRunner:
    """The process-wide runner used by :func:`start_task` (created on first use)."""
    global _default_runner
    if _default_runner is None:
        _default_runner = TaskRunner()
    return _default_runner


def start_task(fn: TaskFn, **kwargs: Any) -> Task:
    """``default_runner().start(fn, **kwargs)``: see :meth:`TaskRunner.start`."""
    return default_runner().start(fn, **kwargs)


def stop_all(timeout_ms: int = 10_000) -> bool:
    """Stop and wait for every task of the default runner."""
    if _default_runner is None:
        return True
    return _default_runner.stop_all(timeout_ms)
