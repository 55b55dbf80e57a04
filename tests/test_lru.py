"""The one bounded store behind every cache: count and size bounds, eviction callback."""

from __future__ import annotations

import threading

from medmo_agent.lru import LRUStore


def test_count_bound_forgets_least_recently_used_and_reports_it() -> None:
    evicted: list[tuple[str, int]] = []
    store: LRUStore[str, int] = LRUStore(2, on_evict=lambda k, v: evicted.append((k, v)))
    store.put("a", 1)
    store.put("b", 2)
    assert store.get("a") == 1  # "a" is now the most recent
    store.put("c", 3)
    assert store.keys() == ["a", "c"]
    assert evicted == [("b", 2)]
    assert store.get("b") is None


def test_size_bound_measures_afresh_and_refuses_an_oversized_value() -> None:
    sizes = {"x": 4, "y": 4, "z": 4}
    store: LRUStore[str, str] = LRUStore(10, max_size=10, size=lambda v: sizes[v])
    assert store.put("x", "x") and store.put("y", "y")
    sizes["x"] = 7  # grew since it was stored
    store.put("z", "z")
    assert store.keys() == ["y", "z"]
    assert store.total_size() == 8
    sizes["big"] = 11
    assert store.put("big", "big") is False
    assert store.keys() == ["y", "z"]  # nothing pushed out for a value never held


def test_per_call_bound_and_discard_without_callback() -> None:
    evicted: list[str] = []
    store: LRUStore[str, int] = LRUStore(5, on_evict=lambda k, v: evicted.append(k))
    for i, key in enumerate("abc"):
        store.put(key, i)
    store.discard("a")
    store.put("d", 3, max_items=1)
    assert store.keys() == ["d"] and evicted == ["b", "c"]


def test_eviction_callback_runs_outside_the_lock() -> None:
    seen: list[int] = []

    def reenter(key: int, value: int) -> None:
        # Another thread must be able to use the store while the callback runs.
        t = threading.Thread(target=lambda: seen.append(len(store)))
        t.start()
        t.join(timeout=5)
        assert not t.is_alive()

    store: LRUStore[int, int] = LRUStore(1, on_evict=reenter)
    store.put(1, 1)
    store.put(2, 2)
    assert seen == [1]
