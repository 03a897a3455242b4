"""Shared pytest wiring: tests import helpers from tests/support."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
