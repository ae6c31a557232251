"""The worker's runtime settings: uvloop by default (asyncio on request), fewer garbage collections, frozen start-up objects and measured pauses."""

from __future__ import annotations

import asyncio
import gc
import threading

import pytest
import uvloop
from prometheus_client import CollectorRegistry

from sinks.metrics import Metrics
from touchpoint import gc_tuning
from touchpoint.event_loop import install
from touchpoint.settings import SettingsError, load_settings


def _loop_type_in_a_thread() -> type:
    """What Faust's consumer thread gets: a new loop made in another thread."""
    made: list[type] = []

    def run() -> None:
        loop = asyncio.new_event_loop()
        made.append(type(loop))
        loop.close()
    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return made[0]


def test_uvloop_by_default_and_asyncio_on_request() -> None:
    assert load_settings({}).event_loop == "uvloop"
    try:
        install(load_settings({}).event_loop)
        assert _loop_type_in_a_thread() is uvloop.Loop
        install(load_settings({"TOUCHPOINT_EVENT_LOOP": "asyncio"}).event_loop)
        assert _loop_type_in_a_thread() is not uvloop.Loop
    finally:
        asyncio.set_event_loop_policy(None)


def test_an_unknown_loop_is_refused_by_name() -> None:
    with pytest.raises(SettingsError, match="EVENT_LOOP: must be one of uvloop, asyncio"):
        load_settings({"TOUCHPOINT_EVENT_LOOP": "trio"})


def test_gc_thresholds_default_to_fewer_collections_and_refuse_nonsense() -> None:
    previous = gc.get_threshold()
    try:
        gc_tuning.apply(load_settings({}).gc_threshold)
        assert gc.get_threshold() == (500_000, 20, 100)
        gc_tuning.apply(load_settings({"TOUCHPOINT_GC_THRESHOLD": "700,10,10"}).gc_threshold)
        assert gc.get_threshold() == (700, 10, 10)
    finally:
        gc.set_threshold(*previous)
    for bad in ("0,10,10", "700,10", "a,b,c", "700,-1,10"):
        with pytest.raises(SettingsError, match="GC_THRESHOLD"):
            load_settings({"TOUCHPOINT_GC_THRESHOLD": bad})


def test_start_up_objects_are_frozen_out_of_later_collections() -> None:
    held = [[n] for n in range(1000)]  # containers that exist before the freeze
    try:
        gc_tuning.freeze_start_up()
        assert gc.get_freeze_count() >= len(held)
        collected = {id(item) for generation in range(3) for item in gc.get_objects(generation=generation)}
        assert not collected & {id(item) for item in held}  # no collection walks them any more
    finally:
        gc.unfreeze()


def test_every_collection_is_observed_by_generation() -> None:
    metrics = Metrics.create(CollectorRegistry())
    callbacks = list(gc.callbacks)
    try:
        gc_tuning.measure_pauses(metrics.gc_pauses)
        gc.collect(0)
        gc.collect(2)
    finally:
        gc.callbacks[:] = callbacks
    sample = metrics.registry.get_sample_value
    assert sample("cx_gc_pause_seconds_count", {"generation": "0"}) >= 1
    assert sample("cx_gc_pause_seconds_count", {"generation": "2"}) >= 1
    assert sample("cx_gc_pause_seconds_sum", {"generation": "2"}) > 0
