"""Item 2 of the issue: a real collections.abc.MutableMapping, keys, values
and serializers."""
import collections.abc
import json
import pickle

import pytest

import larder


def test_a_cache_is_a_mutable_mapping():
    c = larder.Cache(max_bytes=1 << 20)
    assert isinstance(c, collections.abc.MutableMapping)
    c.update({"a": b"1", "b": b"2"}, c=b"3")
    assert sorted(c) == ["a", "b", "c"]  # iteration over keys (str by default)
    assert sorted(c.keys()) == ["a", "b", "c"]
    assert sorted(c.items()) == [("a", b"1"), ("b", b"2"), ("c", b"3")]
    assert sorted(c.values()) == [b"1", b"2", b"3"]
    assert len(c) == 3 and "a" in c and "z" not in c
    assert dict(c) == {"a": b"1", "b": b"2", "c": b"3"}
    assert c.setdefault("a", b"other") == b"1"
    assert c.setdefault("d", b"4") == b"4" and c["d"] == b"4"
    key, value = c.popitem()
    assert key not in c and value in (b"1", b"2", b"3", b"4") and len(c) == 3
    assert c.pop("zz", None) is None
    with pytest.raises(KeyError):
        c.pop("zz")
    c.clear()
    assert len(c) == 0 and list(c) == []
    with pytest.raises(KeyError):
        c.popitem()


def test_items_and_values_are_snapshots():
    c = larder.Cache(max_bytes=1 << 20)
    for i in range(100):
        c[f"k{i}"] = str(i)
    items = c.items()
    c.clear()
    assert len(items) == 100 and ("k7", b"7") in items  # unchanged by the clear
    for key in c:  # writing while iterating a snapshot is allowed
        pass
    c["a"], c["b"] = b"1", b"2"
    for key in c:
        del c[key]
    assert len(c) == 0


def test_prefix_enumeration_and_count():
    c = larder.Cache(max_bytes=1 << 20)
    for i in range(10):
        c[f"user:{i}"] = b"u"
        c[f"team:{i}"] = b"t"
    assert sorted(c.keys("user:")) == sorted(f"user:{i}" for i in range(10))
    assert c.count("team:") == 10 and c.count() == 20
    assert c.invalidate_prefix("user:") == 10 and len(c) == 10


def test_len_does_not_count_expired_entries(clock):
    c = larder.Cache(max_bytes=1 << 20, clock=clock)
    c.set("short", b"v", ttl=1)
    c.set("long", b"v", ttl=100)
    c["forever"] = b"v"
    assert len(c) == 3
    clock.now += 2
    assert len(c) == 2 and sorted(c) == ["forever", "long"]
    assert c.stats().entries == 3  # the engine still holds it until housekeeping


def test_len_skips_stale_and_negative_entries(clock):
    c = larder.Cache(max_bytes=1 << 20, clock=clock, stale_while_revalidate=60,
                     negative_ttl=60)
    c.set("k", b"v", ttl=1)
    assert c.get_or_load("ghost", lambda key: None) is None  # a cached "not found"
    assert len(c) == 1 and list(c) == ["k"]
    clock.now += 2
    assert len(c) == 0 and list(c) == [] and "k" not in c


def test_unsupported_key_types_raise_clear_type_errors():
    c = larder.Cache(max_bytes=1 << 20)
    c["k"] = b"v"
    for bad in (42, 1.5, None, ("a",), object()):
        with pytest.raises(TypeError, match="larder keys are str or bytes"):
            c[bad] = b"v"
        with pytest.raises(TypeError, match="larder keys are str or bytes"):
            c.get(bad)
        with pytest.raises(TypeError, match="larder keys are str or bytes"):
            bad in c
    assert list(iter(c)) == ["k"]  # iteration itself never raises


def test_str_and_bytes_keys_are_one_key():
    c = larder.Cache(max_bytes=1 << 20)
    c["k"] = b"1"
    assert c[b"k"] == b"1"
    c[b"k"] = b"2"
    assert c["k"] == b"2" and len(c) == 1
    c["caf\u00e9"] = b"3"
    assert c["caf\u00e9".encode()] == b"3"


def test_key_type_bytes_and_undecodable_keys_round_trip():
    c = larder.Cache(max_bytes=1 << 20, key_type=bytes)
    c[b"\xff\x00raw"] = b"v"
    assert list(c) == [b"\xff\x00raw"]
    s = larder.Cache(max_bytes=1 << 20)  # key_type=str: surrogateescape
    s[b"\xff\x00raw"] = b"v"
    (key,) = list(s)
    assert isinstance(key, str) and s[key] == b"v"


def test_default_values_are_bytes_and_str_passes_through():
    c = larder.Cache(max_bytes=1 << 20)
    c["b"] = b"bytes"
    c["s"] = "text \u00e9"
    c["ba"] = bytearray(b"array")
    assert c["b"] == b"bytes" and c["s"] == "text \u00e9".encode() and c["ba"] == b"array"
    t = larder.Cache(max_bytes=1 << 20, serializer="str")
    t["s"] = "text \u00e9"
    assert t["s"] == "text \u00e9"


def test_pickle_serializer_caches_objects():
    c = larder.Cache(max_bytes=1 << 20, serializer="pickle")
    c["obj"] = {"a": [1, 2, (3, 4)], "b": None}
    c["none"] = None
    assert c["obj"] == {"a": [1, 2, (3, 4)], "b": None}
    assert c["none"] is None and "none" in c
    assert c.get("absent", "d") == "d"
    assert sorted(c.values(), key=repr) == [None, {"a": [1, 2, (3, 4)], "b": None}]
    assert c.get_or_load("loaded", lambda key: [key, 1]) == ["loaded", 1]
    assert c["loaded"] == ["loaded", 1]
    assert pickle.loads(c.get_pinned("obj").tobytes()) == c["obj"]


def test_user_serializers_pair_and_module():
    pair = larder.Cache(max_bytes=1 << 20, serializer=(json.dumps, json.loads))
    pair["j"] = {"x": [1, 2]}
    assert pair["j"] == {"x": [1, 2]}
    module = larder.Cache(max_bytes=1 << 20, serializer=json)
    module["j"] = [1, "two"]
    assert module["j"] == [1, "two"] and module.get_pinned("j").tobytes() == b'[1, "two"]'
    with pytest.raises(TypeError, match="serializer"):
        larder.Cache(max_bytes=1 << 20, serializer=42)
