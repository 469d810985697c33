"""Shared helpers for the binding's tests."""
import time

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


@pytest.fixture
def eventually():
    """Polls check() until it holds or `within` seconds pass; returns whether it held.

    For "these threads have all joined the load" before a test lets the load
    finish: a fixed sleep is too short on a loaded machine.
    """
    def poll(check, within=5.0):
        deadline = time.monotonic() + within
        while not check():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.001)
        return True
    return poll
