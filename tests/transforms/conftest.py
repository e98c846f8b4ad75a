from __future__ import annotations

import sys
from pathlib import Path

import pytest

from transforms.tokenize import HmacKey

# --import-mode=importlib: make the staged-shape helpers beside this file importable.
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def key() -> HmacKey:
    return HmacKey(key=b"k" * 32, version="v1")
