"""Can the window open here? One clear line instead of Qt's abort on a fresh Linux machine.

Qt loads its platform plugin when the QApplication is made. On Linux that is usually ``xcb``
(X11), whose plugin needs system libraries that a fresh or minimal Debian/Ubuntu lacks
(``libxcb-cursor0`` first of all); Qt then aborts with "could not load the Qt platform plugin
xcb" and a page of hints. Likewise with no display at all. :func:`startup_problem`, called by
:func:`rooftop_gui.app.main` before the QApplication exists, finds these cases and returns ONE
line that says what is wrong and how to fix it (``sudo apt-get install ...``); ``main`` prints it
and exits with status 2.

Which platform Qt will use: ``-platform NAME`` on the command line, else ``QT_QPA_PLATFORM``
(the first of a ``;`` list is what Qt tries first), else on Linux ``wayland`` in a Wayland session
(``WAYLAND_DISPLAY`` set) and ``xcb`` otherwise. Only ``xcb`` is checked; any other platform
(``offscreen`` in the tests, ``wayland``, ``vnc``, ...) is left to Qt, except that ``xcb`` and
``wayland`` with neither ``DISPLAY`` nor ``WAYLAND_DISPLAY`` set get a "no display" line.

The libraries are found with ``ldd`` on the xcb plugin (it resolves the whole dependency tree as
the loader will, and says "not found" for each missing one); without ``ldd`` each library of
:data:`XCB_LIBRARIES` is opened with ``ctypes``. Qt-free apart from asking QtCore (already loaded
by the app) where its plugins are.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

#: What the xcb platform plugin of Qt 6 loads besides Qt itself (the fallback check's list).
XCB_LIBRARIES = (
    "libxcb.so.1",
    "libX11.so.6",
    "libX11-xcb.so.1",
    "libxcb-cursor.so.0",
    "libxcb-icccm.so.4",
    "libxcb-keysyms.so.1",
    "libxcb-image.so.0",
    "libxcb-render-util.so.0",
    "libxcb-xkb.so.1",
    "libxkbcommon.so.0",
    "libxkbcommon-x11.so.0",
    "libxcb-shape.so.0",
    "libxcb-randr.so.0",
    "libxcb-util.so.1",
    "libxcb-shm.so.0",
    "libxcb-sync.so.1",
    "libxcb-xfixes.so.0",
    "libxcb-render.so.0",
    "libfontconfig.so.1",
    "libfreetype.so.6",
    "libEGL.so.1",
    "libGL.so.1",
)

#: Debian/Ubuntu packages whose name does not follow from the soname (see :func:`package_for`).
_PACKAGE_EXCEPTIONS = {
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
    "libgobject-2.0.so.0": "libglib2.0-0",
    "libGLdispatch.so.0": "libglvnd0",
}

#: Libraries that come with PySide6 itself: missing means a broken install, not a missing package.
_BUNDLED = re.compile(r"lib(Qt6|icu|pyside6|shiboken6)", re.IGNORECASE)

_NOT_FOUND = re.compile(r"^\s*(\S+)\s*=>\s*not found\s*$", re.MULTILINE)


def package_for(soname: str) -> str:
    """The Debian/Ubuntu package that provides ``soname``.

    Debian names a shared library's package after its soname: ``libxcb-cursor.so.0`` is in
    ``libxcb-cursor0``, ``libX11.so.6`` in ``libx11-6`` (a dash before the version when the name
    ends in a digit), ``libxkbcommon-x11.so.0`` in ``libxkbcommon-x11-0``; the few that do not
    follow the rule are listed in ``_PACKAGE_EXCEPTIONS``.
    """
    if soname in _PACKAGE_EXCEPTIONS:
        return _PACKAGE_EXCEPTIONS[soname]
    match = re.fullmatch(r"(.+?)\.so\.(\d+)(?:\.\d+)*", soname)
    if not match:
        return soname.lower()
    name, version = match.groups()
    return f"{name}{'-' if name[-1].isdigit() else ''}{version}".lower()


def missing_from_ldd(output: str) -> list[str]:
    """The sonames that ``ldd``'s ``output`` reports as "not found" (in order, no repeats)."""
    return list(dict.fromkeys(_NOT_FOUND.findall(output)))


def xcb_plugin() -> Path | None:
    """Qt's xcb platform plugin file, or None when it cannot be found."""
    folders = []
    if os.environ.get("QT_QPA_PLATFORM_PLUGIN_PATH"):
        folders.append(Path(os.environ["QT_QPA_PLATFORM_PLUGIN_PATH"]))
    try:
        from PySide6.QtCore import QLibraryInfo

        folders.append(Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath)) / "platforms")
    except ImportError:  # pragma: no cover - PySide6 is a dependency
        pass
    for folder in folders:
        plugin = folder / "libqxcb.so"
        if plugin.is_file():
            return plugin
    return None


def run_ldd(plugin: Path) -> str | None:
    """``ldd plugin``'s output, or None when ``ldd`` is absent or fails."""
    ldd = shutil.which("ldd")
    if ldd is None:
        return None
    try:
        done = subprocess.run(
            [ldd, str(plugin)], capture_output=True, text=True, timeout=20, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    # ldd exits non-zero for some problems but still lists what it found; "not found" lines count
    return done.stdout if done.stdout.strip() else None


def _loadable(soname: str) -> bool:
    try:
        ctypes.CDLL(soname)
    except OSError:
        return False
    return True


def missing_libraries(
    plugin: Path | None = None,
    *,
    ldd: Callable[[Path], str | None] | None = None,
    loadable: Callable[[str], bool] | None = None,
) -> list[str]:
    """The sonames the xcb plugin needs that the system lacks ([] when none).

    ``ldd`` (default :func:`run_ldd`) gives ``ldd``'s output for the plugin, or None; then each
    of :data:`XCB_LIBRARIES` is tried with ``loadable`` (default: ``ctypes.CDLL`` opens it).
    """
    plugin = plugin or xcb_plugin()
    output = (ldd or run_ldd)(plugin) if plugin is not None else None
    if output is not None:
        return missing_from_ldd(output)
    loadable = loadable or _loadable
    return [soname for soname in XCB_LIBRARIES if not loadable(soname)]


def missing_libraries_message(missing: Sequence[str], *, has_apt: bool | None = None) -> str:
    """One line: what is missing and the command that installs it."""
    if has_apt is None:
        has_apt = shutil.which("apt-get") is not None
    system = [s for s in missing if not _BUNDLED.match(s)]
    bundled = [s for s in missing if _BUNDLED.match(s)]
    parts = [
        f"rooftop-studio: cannot open the window: Qt's xcb platform plugin needs "
        f"{', '.join(missing)}, not installed on this system"
    ]
    if system:
        packages = " ".join(dict.fromkeys(package_for(s) for s in system))
        where = "install them with" if has_apt else "on Debian/Ubuntu install them with"
        parts.append(f"{where}: sudo apt-get install {packages}")
    if bundled:
        parts.append(
            f"{', '.join(bundled)} come with PySide6: reinstall it "
            "(pip install --force-reinstall PySide6)"
        )
    return "; ".join(parts)


NO_DISPLAY_MESSAGE = (
    "rooftop-studio: no display to open the window on (neither DISPLAY nor "
    "WAYLAND_DISPLAY is set); start it in a desktop session, or over ssh with "
    "X forwarding (ssh -X)."
)


def qt_platform(environ: Mapping[str, str], qt_args: Sequence[str] = ()) -> str:
    """The platform plugin Qt will try first (see the module docstring)."""
    args = list(qt_args)
    for i, arg in enumerate(args):
        if arg in ("-platform", "--platform") and i + 1 < len(args):
            return args[i + 1].split(":")[0].strip().lower()
    requested = environ.get("QT_QPA_PLATFORM", "").split(";")[0].split(":")[0].strip().lower()
    if requested:
        return requested
    return "wayland" if environ.get("WAYLAND_DISPLAY") else "xcb"


def startup_problem(
    environ: Mapping[str, str] | None = None,
    qt_args: Sequence[str] = (),
    *,
    platform: str = sys.platform,
    find_missing: Callable[[], list[str]] | None = None,
) -> str | None:
    """Why the window cannot open here, in one line, or None (see the module docstring).

    ``find_missing`` (default :func:`missing_libraries`) lists the xcb plugin's missing sonames.
    """
    environ = os.environ if environ is None else environ
    if not platform.startswith("linux"):
        return None
    name = qt_platform(environ, qt_args)
    if (
        name in ("xcb", "wayland")
        and not environ.get("DISPLAY")
        and not environ.get("WAYLAND_DISPLAY")
    ):
        return NO_DISPLAY_MESSAGE
    if name != "xcb":
        return None
    missing = (find_missing or missing_libraries)()
    return missing_libraries_message(missing) if missing else None
