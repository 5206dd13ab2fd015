"""GUI latency with the real main window, offscreen (QT_QPA_PLATFORM=offscreen).

Settings and data are isolated in a temporary folder (ROOFTOP_CONFIG_DIR, ROOFTOP_DATA_DIR).

1. Start-up: ``--startup-runs`` fresh ``python -c`` processes import ``rooftop_gui.app``, build the
   ``MainWindow``, show it and report the wall time from just before the process was spawned to
   the window's first paint (so interpreter start and imports count); median and all runs.
2. Event-loop lateness while training: a 10 ms precise QTimer records how late each tick is while
   the Training panel (``window.training``) trains the prescribed model on a demo dataset of
   512 px patches; p50, p99 and max over ``--train-seconds`` seconds of training.
3. Redraw: a 2048 x 2048 image with a probability map; each threshold or dilation change
   (``canvas.set_threshold`` / ``canvas.set_dilation``) followed by ``viewport().repaint()``.
4. Brush stroke: 50 points through real mouse events on the canvas viewport (the annotation
   controller's brush, radius 20, 2048 x 2048 label, error layer on), each move followed by
   ``processEvents()`` so the changed rectangle is repainted; ``--stroke-repeats`` strokes, each
   after a short pause in the event loop: median total (press to release, wall clock), the GUI
   thread's CPU time (less sensitive to a busy machine; Qt's own worker threads not counted),
   press, release and per-move times.

Quick run: ``python benchmarks/gui_latency.py`` (about a minute).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, demo_dataset, demo_image, emit, machine, median, note, rnd  # noqa: E402

TARGETS = {
    "startup_s": 1.5,
    "lateness_p99_ms": 30.0,
    "lateness_max_ms": 100.0,
    "redraw_ms": 50.0,
    "stroke_ms": 30.0,
}

STARTUP_CHILD = r"""
import os, sys, time
from PySide6.QtCore import QEvent, QObject
from rooftop_gui.app import create_app
app = create_app([])
from rooftop_gui.main_window import MainWindow
window = MainWindow()
class FirstPaint(QObject):
    def eventFilter(self, obj, event):
        if event.type() == QEvent.Type.Paint and (obj is window or window.isAncestorOf(obj)):
            print(f"PAINT {time.time():.6f}", flush=True)
            os._exit(0)
        return False
spy = FirstPaint()
app.installEventFilter(spy)
window.resize(1400, 900)
window.show()
app.exec()
"""


def percentile(values: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def measure_startup(runs: int, env: dict) -> dict:
    times = []
    for _ in range(runs):
        spawned = time.time()
        proc = subprocess.run(
            [sys.executable, "-c", STARTUP_CHILD],
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO,
            timeout=120,
            check=False,
        )
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("PAINT ")), None)
        if line is None:
            return {"error": proc.stderr.strip()[-1500:]}
        times.append(float(line.split()[1]) - spawned)
    return {
        "median_s": rnd(median(times)),
        "all_s": [rnd(t) for t in times],
        "target_met": median(times) < TARGETS["startup_s"],
    }


def write_big_dataset(root: Path, size: int) -> Path:
    """train/data/00000.png: the demo scene at ``size``; its label is empty (we paint into it)."""
    import numpy as np

    from core.io import write_image, write_mask

    image = demo_image(size)
    if not (root / "train" / "data" / "00000.png").is_file():
        for part in ("train/data", "train/label", "test/data", "test/label"):
            (root / part).mkdir(parents=True, exist_ok=True)
        write_image(root / "train" / "data" / "00000.png", image)
        write_mask(root / "train" / "label" / "00000.png", np.zeros(image.shape[:2], bool))
    return root


def wait_until(app, predicate, timeout: float = 60.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        app.processEvents()
        if predicate():
            return True
        time.sleep(0.005)
    return False


def measure_training_lateness(app, window, dataset: Path, args) -> dict:
    from PySide6.QtCore import QElapsedTimer, QEventLoop, Qt, QTimer

    assert window.open_dataset(dataset)
    panel = window.training
    if not hasattr(panel, "start_training"):
        return {"error": "no TrainingPanel in this build"}
    form = panel.form
    form.arch_box.setCurrentIndex(form.arch_box.findData("prescribed"))
    form.use_epochs(1000)
    form.batch_spin.setValue(args.train_batch)
    form.crop_spin.setValue(256)
    form.samples_spin.setValue(64)
    form.device_box.setCurrentIndex(max(0, form.device_box.findData("cpu")))
    window.training_dock.raise_()
    app.processEvents()

    late: list[float] = []
    clock = QElapsedTimer()
    last = [None]
    timer = QTimer()
    timer.setTimerType(Qt.TimerType.PreciseTimer)
    timer.setInterval(10)

    def tick() -> None:
        now = clock.nsecsElapsed() / 1e6
        if last[0] is not None:
            late.append(max(0.0, now - last[0] - 10.0))
        last[0] = now

    timer.timeout.connect(tick)
    started = time.monotonic()
    assert panel.start_training()
    # wait for the first batch (torch import and image decoding happen before it, in the worker)
    first_batch = wait_until(
        app,
        lambda: panel._run.get("batches") is not None or panel.progress.maximum() > 0,
        timeout=120,
    )
    note(
        f"training started ({time.monotonic() - started:.1f} s to first progress); timing "
        f"the event loop for {args.train_seconds} s"
    )
    clock.start()
    timer.start()
    loop = QEventLoop()
    QTimer.singleShot(int(args.train_seconds * 1000), loop.quit)
    loop.exec()
    timer.stop()
    still_training = panel.is_training()
    panel.stop_training()
    wait_until(app, lambda: not panel.is_training(), timeout=120)
    return {
        "ticks": len(late),
        "p50_ms": rnd(percentile(late, 50), 2),
        "p99_ms": rnd(percentile(late, 99), 2),
        "max_ms": rnd(max(late) if late else None, 2),
        "first_progress_seen": first_batch,
        "trained_throughout": still_training,
        "seconds": args.train_seconds,
        "target_met": percentile(late, 99) < TARGETS["lateness_p99_ms"]
        and (max(late) if late else 1e9) < TARGETS["lateness_max_ms"],
    }


def measure_redraw(app, window, args) -> dict:
    import numpy as np

    canvas = window.canvas
    h, w = canvas.image().shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    prob = (0.5 + 0.5 * np.sin(xx / 37.0) * np.cos(yy / 23.0)).astype(np.float32)
    canvas.set_probability(prob)
    canvas.viewport().repaint()
    app.processEvents()
    results = {}
    thresholds = [0.3, 0.4, 0.5, 0.6, 0.7] * (args.redraw_repeats // 5 + 1)
    kernels = [(True, 3), (True, 5), (True, 7), (False, None)] * (args.redraw_repeats // 4 + 1)
    for name, steps in (
        ("threshold", [lambda t=t: canvas.set_threshold(t) for t in thresholds]),
        ("dilation", [lambda d=d: canvas.set_dilation(*d) for d in kernels]),
    ):
        times = []
        for step in steps[: args.redraw_repeats]:
            t0 = time.perf_counter()
            step()
            canvas.viewport().repaint()
            times.append((time.perf_counter() - t0) * 1000)
            app.processEvents()
        results[name] = {
            "median_ms": rnd(median(times), 2),
            "max_ms": rnd(max(times), 2),
            "target_met": median(times) < TARGETS["redraw_ms"],
        }
    # also the heat-map path (no target, for the record)
    canvas.set_heatmap(True)
    times = []
    for k in [(True, 3), (True, 5), (False, None)] * 3:
        t0 = time.perf_counter()
        canvas.set_dilation(*k)
        canvas.viewport().repaint()
        times.append((time.perf_counter() - t0) * 1000)
    canvas.set_heatmap(False)
    results["heatmap_dilation"] = {"median_ms": rnd(median(times), 2), "max_ms": rnd(max(times), 2)}
    return results


def settle(app, seconds: float = 0.2) -> None:
    """Run the event loop for a moment, as a user pauses before pressing: layout requests left
    by the set-up (a layer switched on, the brush size shown) are handled here, not timed as part
    of the next press (one ``processEvents()`` call leaves some of them for the next one)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.005)


def one_stroke(app, viewport, at, path) -> dict:
    """Press, moves and release along ``path``; wall times (ms) and the GUI thread's CPU time."""
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    per_move = []
    cpu = time.thread_time()
    start = time.perf_counter()
    QTest.mousePress(
        viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at(*path[0])
    )
    app.processEvents()
    press = (time.perf_counter() - start) * 1000
    for point in path[1:]:
        t0 = time.perf_counter()
        QTest.mouseMove(viewport, at(*point))
        app.processEvents()  # includes the repaint of the changed rectangle
        per_move.append((time.perf_counter() - t0) * 1000)
    t0 = time.perf_counter()
    QTest.mouseRelease(
        viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at(*path[-1])
    )
    app.processEvents()
    release = (time.perf_counter() - t0) * 1000
    return {
        "total": (time.perf_counter() - start) * 1000,
        "press": press,
        "release": release,
        "moves": per_move,
        "cpu": (time.thread_time() - cpu) * 1000,
    }


def measure_stroke(app, window, points: int = 50, repeats: int = 5) -> dict:
    """``repeats`` strokes of ``points`` points, 100 px apart (the first one makes the label
    dirty); totals are medians over the strokes, per-move figures over all their moves."""
    from PySide6.QtCore import QPointF

    canvas = window.canvas
    ctl = window.annotation
    if hasattr(window.layers, "error_action"):
        window.layers.error_action.setChecked(True)
    ctl.tool_actions["brush"].trigger()
    ctl.set_brush_size(40)
    viewport = canvas.viewport()

    def at(x: float, y: float):
        return canvas.mapFromScene(QPointF(x, y))

    strokes = []
    painted = False
    for r in range(repeats):
        path = [(200 + 30 * i, 300 + 100 * r + 20 * i) for i in range(points)]
        settle(app)
        strokes.append(one_stroke(app, viewport, at, path))
        if r == 0:
            painted = bool(ctl.editor is not None and ctl.editor.mask[300, 200])
    ctl.discard()
    totals = [s["total"] for s in strokes]
    per_move = [m for s in strokes for m in s["moves"]]
    return {
        "points": points,
        "strokes": repeats,
        "total_ms": rnd(median(totals), 1),
        "all_total_ms": [rnd(t, 1) for t in totals],
        "cpu_ms": rnd(median([s["cpu"] for s in strokes]), 1),
        "press_ms": rnd(median([s["press"] for s in strokes]), 2),
        "release_ms": rnd(median([s["release"] for s in strokes]), 2),
        "per_move_median_ms": rnd(median(per_move), 2),
        "per_move_p90_ms": rnd(percentile(per_move, 90), 2),
        "per_move_max_ms": rnd(max(per_move), 2),
        "painted": painted,
        "target_total_met": median(totals) < TARGETS["stroke_ms"],
        "target_per_move_met": max(per_move) < TARGETS["stroke_ms"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("--startup-runs", type=int, default=3)
    parser.add_argument(
        "--train-seconds",
        type=float,
        default=15.0,
        help="seconds of training during which lateness is recorded (15)",
    )
    parser.add_argument("--train-batch", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=2048, help="redraw / stroke image side")
    parser.add_argument("--redraw-repeats", type=int, default=10)
    parser.add_argument(
        "--stroke-repeats",
        type=int,
        default=5,
        help="brush strokes timed (5); stroke figures are medians over them",
    )
    parser.add_argument(
        "--skip", default="", help="comma list of parts to skip: startup,training,redraw,stroke"
    )
    args = parser.parse_args(argv)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}

    tmp = Path(tempfile.mkdtemp(prefix="rooftop-gui-bench-"))
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    os.environ["ROOFTOP_CONFIG_DIR"] = str(tmp / "config")
    os.environ["ROOFTOP_DATA_DIR"] = str(tmp / "data")
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    )
    result: dict = {"benchmark": "gui_latency", "platform": "offscreen", "targets": TARGETS}
    if "startup" not in skip:
        note("start-up ...")
        result["startup"] = measure_startup(args.startup_runs, env)

    train_dataset = demo_dataset(scene=1024, patch="512:0.25", resize=512)
    big = write_big_dataset(tmp / "big", args.image_size)

    from rooftop_gui.app import create_app

    app = create_app([])
    from rooftop_gui.main_window import MainWindow

    window = MainWindow()
    window.resize(1400, 900)
    window.show()
    app.processEvents()
    try:
        if "training" not in skip:
            note("event-loop lateness while training ...")
            result["lateness_while_training"] = measure_training_lateness(
                app, window, train_dataset, args
            )
        if not ({"redraw", "stroke"} <= skip):
            assert window.open_dataset(big)
            window.browser.select("train", "00000.png")
            ok = wait_until(
                app,
                lambda: window.canvas.image() is not None and window.annotation.sample is not None,
                timeout=60,
            )
            if not ok:
                raise RuntimeError("the 2048 image did not show")
            if "redraw" not in skip:
                note("redraw ...")
                result["redraw_2048"] = measure_redraw(app, window, args)
            if "stroke" not in skip:
                note("brush stroke ...")
                result["brush_stroke_2048"] = measure_stroke(
                    app, window, repeats=args.stroke_repeats
                )
    finally:
        if hasattr(window.training, "shutdown"):
            window.training.shutdown(60_000)
        window.runner.stop_all(30_000)
    import torch  # loaded by the training run; report its threads

    result["machine"] = machine()
    result["torch_threads_main"] = torch.get_num_threads()
    result["command"] = " ".join(["python", "benchmarks/gui_latency.py", *sys.argv[1:]])
    emit(result)
    sys.stdout.flush()
    os._exit(0)  # skip Qt teardown of a window with live docks (not what is measured)


if __name__ == "__main__":
    sys.exit(main())
