"""Shared helpers for the binding's tests."""
import pytest


class FakeClock:
    """Monotonic seconds the test moves by hand."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return FakeClock()
