"""The background-task helper: results, errors, progress and stop cross the thread as objects."""

from __future__ import annotations

import threading
import time

from rooftop_gui.workers import TaskRunner, live_threads, start_task


def test_result_progress_and_callbacks_run_in_gui_thread(qtbot):
    main = threading.get_ident()
    seen, threads = [], []

    def fn(on_progress, should_stop):
        threads.append(threading.get_ident())
        for i in range(3):
            on_progress(i)
        return "ok"

    task = start_task(
        fn, on_progress=lambda e: (seen.append(e), threads.append(threading.get_ident())), name="t"
    )
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


def test_many_tasks_wait_all(qtbot):
    """Five tasks at once, each in a thread of its own (none the GUI thread); wait_all returns
    once all have ended, without asking any to stop."""
    runner = TaskRunner()
    ran_in: dict[int, int] = {}

    def job(i):
        def fn(on_progress, should_stop):
            ran_in[i] = threading.get_ident()
            time.sleep(0.02)
            return i * 2

        return fn

    tasks = [runner.start(job(i), name=f"job{i}") for i in range(5)]
    assert runner.wait_all(5000)
    assert [t.result for t in tasks] == [0, 2, 4, 6, 8]
    assert all(t.error is None and not t.is_running() and not t.stop_requested for t in tasks)
    assert sorted(ran_in) == [0, 1, 2, 3, 4]
    assert threading.get_ident() not in ran_in.values()
    assert len({id(t.thread) for t in tasks}) == 5
    assert runner.tasks() == [] and not live_threads()


def test_many_emits_do_not_free_true(qtbot):
    """PySide6 6.12.0 drops a reference to True per Python emit, which aborts the interpreter
    ("bool_dealloc") on Python < 3.12 after enough progress events; pyproject.toml pins it out
    (``!=6.12.0``). This fails, instead of a crash later, for a binding with that bug."""
    import sys

    before = sys.getrefcount(True)
    runner = TaskRunner()
    task = runner.start(lambda report, stop: [report(i) for i in range(20_000)] and None)
    assert runner.wait_all(10_000)
    assert task.error is None
    assert sys.getrefcount(True) >= before - 1_000


def test_nothing_lives_in_the_task_thread_and_it_is_destroyed_in_the_gui_thread(qtbot):
    """Moving or deleting a Python-made QObject across threads can deadlock with a GUI thread
    that holds the GIL inside Qt, so no object lives in the task's thread: its QThread object
    belongs to the GUI thread, runs fn in run(), and is deleted there after it has finished."""
    from PySide6.QtCore import QCoreApplication, QEvent

    gui = QCoreApplication.instance().thread()
    ran_in, destroyed_in = [], []
    task = start_task(
        lambda on_progress, should_stop: ran_in.append(threading.get_ident()), name="t"
    )
    task.thread.destroyed.connect(lambda *_: destroyed_in.append(threading.get_ident()))
    with qtbot.waitSignal(task.done, timeout=5000):
        pass
    assert ran_in and ran_in != [threading.get_ident()]  # fn ran in the task's own thread
    assert task.thread.thread() is gui
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    qtbot.waitUntil(lambda: bool(destroyed_in), timeout=2000)
    assert destroyed_in == [threading.get_ident()]
