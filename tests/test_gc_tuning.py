"""A serving process freezes its start-up objects and collects young ones less often."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from api.app import tune_gc
from core.settings import Settings


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


def test_start_up_objects_are_frozen_and_young_ones_collected_less_often(
    restored_gc: None,
) -> None:
    gc.unfreeze()
    _, older, oldest = gc.get_threshold()
    tune_gc(Settings(jwt_secret="x" * 32, api={"gc_young_threshold": 12_345}))
    assert gc.get_threshold() == (12_345, older, oldest)
    assert gc.get_freeze_count() > 10_000


def test_zero_leaves_the_collector_alone(restored_gc: None) -> None:
    gc.unfreeze()
    before = gc.get_threshold()
    tune_gc(Settings(jwt_secret="x" * 32, api={"gc_young_threshold": 0}))
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
