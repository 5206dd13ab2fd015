"""The icons and style sheet are found, from the source tree and from a regular wheel install.

``resources/`` is installed as the package ``rooftop_gui.assets`` (``pyproject.toml``);
``rooftop_gui.resources`` finds it with ``importlib.resources``, or in the source tree.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from PySide6.QtCore import QCoreApplication, QEvent

from rooftop_gui import resources
from rooftop_gui.main_window import MainWindow
from rooftop_gui.settings import make_settings

ROOT = Path(__file__).resolve().parents[2]
URL = re.compile(r"url\(@RES@/([^)]+)\)")


def _resource_files() -> list[str]:
    """Every file of resources/ (relative, posix), except Python caches."""
    folder = ROOT / "resources"
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    )


def test_every_icon_the_window_asks_for_exists(qapp, monkeypatch):
    asked: list[str] = []
    real = resources.resource_path

    def recording(relative: str) -> Path:
        asked.append(relative)
        return real(relative)

    resources.icon.cache_clear()  # icons made by earlier tests would not be asked for again
    monkeypatch.setattr(resources, "resource_path", recording)
    try:
        resources.icon("app")  # what rooftop_gui.app.create_app asks for (not called here:
        resources.stylesheet()  # it would style the QApplication of every later test)
        win = MainWindow(settings=make_settings())
        win.close()  # no main window outlives its test
        win.deleteLater()
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    finally:
        resources.icon.cache_clear()
    icons = {a for a in asked if a.startswith("icons/")}
    assert len(icons) >= 30, icons  # the window, its panels, tool bars and menus
    folder = resources.resources_dir()
    missing = sorted(a for a in icons if not (folder / a).is_file())
    assert not missing, f"icons asked for but not in {folder}: {missing}"
    assert not resources.icon("app").isNull()


def test_the_style_sheet_refers_to_existing_files():
    text = (ROOT / "resources" / resources.STYLE_SHEET).read_text(encoding="utf-8")
    referred = URL.findall(text)
    assert referred, "the style sheet should use @RES@ url()s (this test checks them)"
    for relative in referred:
        assert (resources.resources_dir() / relative).is_file(), relative
    shown = resources.stylesheet()
    assert "@RES@" not in shown
    assert f"url({resources.resources_dir().as_posix()}/icons/check.svg)" in shown


def test_icons_named_in_the_code_exist():
    """``icon("name")`` literals anywhere in the GUI code (even those built only in some states)."""
    names = set()
    for source in (ROOT / "rooftop_gui").glob("*.py"):
        names.update(re.findall(r"""\bicon\(["']([\w-]+)["']\)""", source.read_text("utf-8")))
    assert names
    missing = sorted(n for n in names if not (ROOT / "resources" / "icons" / f"{n}.svg").is_file())
    assert not missing


def test_a_missing_resources_folder_leaves_the_app_working(monkeypatch, tmp_path):
    monkeypatch.setattr(resources, "SOURCE_RESOURCES", tmp_path / "nowhere")
    monkeypatch.setattr(resources, "_installed_dir", lambda: None)
    resources.resources_dir.cache_clear()
    resources.icon.cache_clear()
    try:
        assert resources.resources_dir() == tmp_path / "nowhere"
        assert resources.icon("app").isNull()
        assert resources.stylesheet() == ""
    finally:
        resources.resources_dir.cache_clear()
        resources.icon.cache_clear()


@pytest.mark.slow
def test_a_regular_wheel_install_finds_every_resource(tmp_path):
    """Build a wheel from a copy of the tree, unpack it as pip installs it (a plain folder on
    sys.path, no link back to the source) and look the resources up from there."""
    pytest.importorskip("setuptools")
    source = tmp_path / "src"
    source.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "build", "*.egg-info")
    for name in ("pyproject.toml", "README.md", "main.py"):
        shutil.copy2(ROOT / name, source / name)
    for name in ("core", "rooftop_gui", "resources"):
        shutil.copytree(ROOT / name, source / name, ignore=ignore)
    wheels = tmp_path / "wheels"
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(source),
            "-w",
            str(wheels),
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = wheels.glob("rooftop_studio-*.whl")

    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path / "site")
    for rel in _resource_files():
        assert f"rooftop_gui/assets/{rel}" in names, f"resources/{rel} is not in the wheel"
    for package in ("core", "rooftop_gui"):
        for path in (ROOT / package).rglob("*.py"):
            rel = path.relative_to(ROOT).as_posix()
            assert rel in names, f"{rel} is not in the wheel (list its package in pyproject.toml)"

    site = tmp_path / "site"
    check = textwrap.dedent("""
        import json, sys
        import rooftop_gui
        from rooftop_gui import resources
        folder = resources.resources_dir()
        files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                       if p.is_file() and "__pycache__" not in p.parts)
        print(json.dumps({"package": rooftop_gui.__file__, "folder": str(folder), "files": files,
                          "style": resources.stylesheet()}))
    """)
    run = subprocess.run(
        [sys.executable, "-c", check],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**_clean_env(), "PYTHONPATH": str(site)},
    )
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout.strip().splitlines()[-1])
    assert Path(found["package"]).is_relative_to(site), found["package"]
    assert Path(found["folder"]) == (site / "rooftop_gui" / "assets").resolve()
    assert set(_resource_files()) <= set(found["files"])
    for relative in URL.findall((ROOT / "resources" / resources.STYLE_SHEET).read_text("utf-8")):
        assert f"url({Path(found['folder']).as_posix()}/{relative})" in found["style"]


def _clean_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
