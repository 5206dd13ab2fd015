"""The background-task helper: results, errors, progress and stop cross the thread as objects."""

from __future__ import annotations

import threading
import time

import pytest
from PySide6.QtCore import QThread

from rooftop_gui.workers import TaskRunner, live_threads, start_task


def test_result_progress_and_callbacks_run_in_gui_thread(qtbot):
    main = threading.get_ident()
    seen, threads = [], []

    def fn(on_progress, should_stop):
        threads.append(threading.get_ident())
        for i in range(3):
            on_progress(i)
        return "ok"

    task = start_task(fn, on_progress=lambda e: (seen.append(e), threads.append(threading.get_ident())),
                      name="t")
    with qtbot.waitSignal(task.done, timeout=5000):
        pass
    assert task.result == "ok" and task.error is None
    assert seen == [0, 1, 2]
    assert threads[0] != main and set(threads[1:]) == {main}
    assert not live_threads()


def test_failure_crosses_thread_as_exception_object(qtbot):
    def fn(on_progress, should_stop):
        raise ValueError("boom")

    errors = []
    task = start_task(fn, on_failed=errors.append)
    with qtbot.waitSignal(task.done, timeout=5000):
        pass
    assert isinstance(errors[0], ValueError) and str(errors[0]) == "boom"


def test_request_stop_and_stop_all(qtbot):
    runner = TaskRunner()
    started = threading.Event()

    def fn(on_progress, should_stop):
        started.set()
        while not should_stop():
            time.sleep(0.005)
        return "stopped"

    task = runner.start(fn, name="loop")
    assert started.wait(5)
    assert runner.is_busy("loop")
    assert runner.stop_all(5000)
    assert task.result == "stopped" and not task.is_running()
    assert not runner.tasks()
    assert not live_threads()


@pytest.mark.parametrize("n", [5])
def test_many_tasks_wait_all(qtbot, n):
    runner = TaskRunner()
    tasks = [runner.start(lambda p, s, i=i: i * 2) for i in range(n)]
    assert runner.wait_all(5000)
    assert sorted(t.result for t in tasks) == [0, 2, 4, 6, 8]
    assert all(isinstance(t.thread, QThread) or t.thread is None for t in tasks)


def test_many_emits_do_not_free_true(qtbot):
    """PySide6 6.12.0 drops a reference to True per Python emit (see rooftop_gui.qt_compat)."""
    import sys

    import rooftop_gui  # noqa: F401 - applies the guard

    before = sys.getrefcount(True)
    runner = TaskRunner()
    task = runner.start(lambda report, stop: [report(i) for i in range(20_000)] and None)
    assert runner.wait_all(10_000)
    assert task.error is None
    # with a fixed PySide6 nothing leaks; with 6.12.0 the guard makes True immortal
    assert sys.getrefcount(True) >= before - 1_000 or sys.getrefcount(True) > 1_000_000


def test_the_worker_is_destroyed_in_the_gui_thread_not_the_finished_one(qtbot):
    """Deleting a Python-made QObject in the ending worker thread can deadlock with a GUI
    thread that holds the GIL while (dis)connecting signals, so the worker comes back first."""
    from PySide6.QtCore import QCoreApplication, QEvent

    destroyed_in = []
    task = start_task(lambda on_progress, should_stop: None, name="t")
    task.worker.destroyed.connect(lambda *_: destroyed_in.append(threading.get_ident()))
    with qtbot.waitSignal(task.done, timeout=5000):
        pass
    assert task.worker.thread() is QCoreApplication.instance().thread()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    qtbot.waitUntil(lambda: bool(destroyed_in), timeout=2000)
    assert destroyed_in == [threading.get_ident()]
