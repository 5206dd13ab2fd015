"""First start on a fresh machine: a missing system library of Qt's xcb plugin, or no display at
all, is said in one line with the fix and exit status 2, instead of Qt's abort."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rooftop_gui import platform_check
from rooftop_gui.platform_check import (
    missing_from_ldd,
    missing_libraries,
    package_for,
    qt_platform,
    startup_problem,
)

ROOT = Path(__file__).resolve().parents[2]

LDD_OUTPUT = """\
\tlinux-vdso.so.1 (0x00007ffd2a1f2000)
\tlibQt6XcbQpa.so.6 => /venv/PySide6/Qt/plugins/platforms/../../lib/libQt6XcbQpa.so.6 (0x7f0)
\tlibxkbcommon-x11.so.0 => /lib/x86_64-linux-gnu/libxkbcommon-x11.so.0 (0x00007f7c1a1af000)
\tlibxcb-cursor.so.0 => not found
\tlibxcb-icccm.so.4 => /lib/x86_64-linux-gnu/libxcb-icccm.so.4 (0x00007f7c1a1a8000)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f7c1901e000)
\t/lib64/ld-linux-x86-64.so.2 (0x00007f7c1ae77000)
"""
NOTHING_MISSING = LDD_OUTPUT.replace(
    "libxcb-cursor.so.0 => not found", "libxcb-cursor.so.0 => /lib/libxcb-cursor.so.0 (0x7f1)"
)
X11 = {"DISPLAY": ":0"}


def from_ldd(output: str):
    return lambda: missing_libraries(
        Path("/qt/plugins/platforms/libqxcb.so"), ldd=lambda plugin: output
    )


def test_ldd_not_found_lines_are_the_missing_libraries():
    assert missing_from_ldd(LDD_OUTPUT) == ["libxcb-cursor.so.0"]
    assert missing_from_ldd(NOTHING_MISSING) == []
    twice = LDD_OUTPUT + "\tlibxcb-util.so.1 => not found\n\tlibxcb-cursor.so.0 => not found\n"
    assert missing_from_ldd(twice) == ["libxcb-cursor.so.0", "libxcb-util.so.1"]


def test_a_missing_xcb_cursor_is_one_line_with_the_package():
    line = startup_problem(X11, platform="linux", find_missing=from_ldd(LDD_OUTPUT))
    assert line is not None and "\n" not in line
    assert "libxcb-cursor.so.0" in line
    assert "sudo apt-get install libxcb-cursor0" in line


def test_nothing_missing_says_nothing():
    assert startup_problem(X11, platform="linux", find_missing=from_ldd(NOTHING_MISSING)) is None


@pytest.mark.parametrize(
    "environ, args",
    [
        ({"QT_QPA_PLATFORM": "offscreen"}, ()),
        ({"QT_QPA_PLATFORM": "offscreen", "DISPLAY": ":0"}, ()),
        ({"DISPLAY": ":0"}, ("-platform", "offscreen")),
        ({"QT_QPA_PLATFORM": "wayland", "WAYLAND_DISPLAY": "wayland-0"}, ()),
        ({"WAYLAND_DISPLAY": "wayland-0", "DISPLAY": ":0"}, ()),  # a Wayland session: Qt's wayland
        ({"QT_QPA_PLATFORM": "vnc"}, ()),
    ],
)
def test_other_platforms_skip_the_check(environ, args):
    def boom():
        raise AssertionError("the xcb libraries were checked")

    assert qt_platform(environ, args) != "xcb"
    assert startup_problem(environ, args, platform="linux", find_missing=boom) is None


def test_xcb_is_checked_when_asked_for_or_by_default():
    assert qt_platform({"DISPLAY": ":0"}) == "xcb"
    assert qt_platform({"QT_QPA_PLATFORM": "xcb", "WAYLAND_DISPLAY": "w"}) == "xcb"
    assert qt_platform({"QT_QPA_PLATFORM": "xcb;wayland"}) == "xcb"
    assert qt_platform({"QT_QPA_PLATFORM": "offscreen"}, ["-platform", "xcb"]) == "xcb"
    line = startup_problem(
        {"QT_QPA_PLATFORM": "xcb", "DISPLAY": ":1"},
        platform="linux",
        find_missing=from_ldd(LDD_OUTPUT),
    )
    assert line and "libxcb-cursor0" in line


def test_not_linux_skips_the_check():
    assert (
        startup_problem({}, platform="win32", find_missing=lambda: ["libxcb-cursor.so.0"]) is None
    )
    assert startup_problem({}, platform="darwin") is None


def test_no_display_at_all_is_one_line():
    line = startup_problem({}, platform="linux", find_missing=lambda: [])
    assert line == platform_check.NO_DISPLAY_MESSAGE
    assert "DISPLAY" in line and "\n" not in line
    assert startup_problem({"QT_QPA_PLATFORM": "offscreen"}, platform="linux") is None


def test_without_ldd_each_library_is_tried():
    missing = missing_libraries(
        Path("/qt/libqxcb.so"),
        ldd=lambda plugin: None,
        loadable=lambda soname: soname not in ("libxcb-cursor.so.0", "libxcb-randr.so.0"),
    )
    assert missing == ["libxcb-cursor.so.0", "libxcb-randr.so.0"]
    line = platform_check.missing_libraries_message(missing, has_apt=True)
    assert "sudo apt-get install libxcb-cursor0 libxcb-randr0" in line


@pytest.mark.parametrize(
    "soname, package",
    [
        ("libxcb-cursor.so.0", "libxcb-cursor0"),
        ("libxcb-icccm.so.4", "libxcb-icccm4"),
        ("libxcb-keysyms.so.1", "libxcb-keysyms1"),
        ("libxcb-image.so.0", "libxcb-image0"),
        ("libxcb-render-util.so.0", "libxcb-render-util0"),
        ("libxcb-xkb.so.1", "libxcb-xkb1"),
        ("libxkbcommon-x11.so.0", "libxkbcommon-x11-0"),
        ("libxcb-shape.so.0", "libxcb-shape0"),
        ("libxcb-randr.so.0", "libxcb-randr0"),
        ("libX11-xcb.so.1", "libx11-xcb1"),
        ("libX11.so.6", "libx11-6"),
        ("libGL.so.1", "libgl1"),
        ("libEGL.so.1", "libegl1"),
        ("libfontconfig.so.1", "libfontconfig1"),
        ("libglib-2.0.so.0", "libglib2.0-0"),
        ("libdbus-1.so.3", "libdbus-1-3"),
    ],
)
def test_debian_package_names(soname, package):
    assert package_for(soname) == package


def test_libraries_of_pyside6_itself_are_not_apt_packages():
    line = platform_check.missing_libraries_message(
        ["libQt6XcbQpa.so.6", "libxcb-xkb.so.1"], has_apt=True
    )
    assert (
        "sudo apt-get install libxcb-xkb1" in line
        and "libqt6" not in line.lower().split("apt-get install")[1].split(";")[0]
    )
    assert "PySide6" in line and "\n" not in line


def test_the_real_plugin_is_found_and_checked():
    """On this machine (its libraries installed, the tests need them) nothing is missing."""
    if not sys.platform.startswith("linux"):
        pytest.skip("Linux only")
    plugin = platform_check.xcb_plugin()
    assert plugin is not None and plugin.name == "libqxcb.so"
    assert isinstance(missing_libraries(plugin), list)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")
def test_main_exits_2_with_one_line_for_a_missing_library(tmp_path):
    done = _run(
        {"DISPLAY": ":97", "ROOFTOP_DATA_DIR": str(tmp_path)},
        "platform_check.run_ldd = lambda plugin: " + repr(LDD_OUTPUT),
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "sudo apt-get install libxcb-cursor0" in lines[0]
    assert "could not load the Qt platform plugin" not in done.stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")
def test_main_exits_2_with_one_line_without_a_display(tmp_path):
    done = _run({"ROOFTOP_DATA_DIR": str(tmp_path)})
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == platform_check.NO_DISPLAY_MESSAGE


def _run(extra: dict[str, str], prelude: str = "") -> subprocess.CompletedProcess:
    script = textwrap.dedent(f"""
        import sys
        from rooftop_gui import app, platform_check
        {prelude}
        sys.exit(app.main([]))
    """)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
    }
    env.update(extra, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )
