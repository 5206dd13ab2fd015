"""Icons and the style sheet of the app, installed as the package ``rooftop_gui.assets``.

No code: this file makes the folder a regular package, so ``importlib.resources`` finds its files
in a wheel install (see ``rooftop_gui/resources.py`` and ``pyproject.toml``).
"""
