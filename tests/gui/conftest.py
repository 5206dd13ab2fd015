"""GUI test fixtures.

The fixtures the GUI tests share with tests/reliability (``tiny_dataset``, ``make_dataset``,
``messages``, the no-QThread-left-running check) are in tests/conftest.py; test data is written by
tests/factories.py and GUI helpers (``configure_quick_training``) are in tests/gui/helpers.py.
This file holds fixtures only, and nothing imports it.
"""
