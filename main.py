"""Thin launcher: ``python main.py [DATASET]`` opens Rooftop Studio (see rooftop_gui.app)."""

import sys

from rooftop_gui.app import main

if __name__ == "__main__":
    sys.exit(main())
