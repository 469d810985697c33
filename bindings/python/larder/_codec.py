"""Keys and values as bytes: the key codec and the value serializers."""
import pickle


def key_bytes(key):
    """A key as the engine sees it: a str is its UTF-8 bytes (so 'k' and b'k'
    are one key); lone surrogates from surrogateescape map back to the bytes
    they stand for, so every key read back from the cache can be used again."""
    t = type(key)
    if t is str or isinstance(key, str):
        try:
            return key.encode("utf-8")
        except UnicodeEncodeError:
            return key.encode("utf-8", "surrogateescape")
    if t is bytes:
        return key
    if isinstance(key, (bytes, bytearray, memoryview)):
        return bytes(key)
    raise TypeError(f"larder keys are str or bytes, not {t.__name__}")


def decode_str_key(data):
    return data.decode("utf-8", "surrogateescape")


def decode_bytes_key(data):
    return data


def key_decoder(key_type):
    if key_type is str:
        return decode_str_key
    if key_type is bytes:
        return decode_bytes_key
    raise ValueError("key_type must be str or bytes")


def _raw_dumps(value):
    t = type(value)
    if t is bytes:
        return value
    if t is str:
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    raise TypeError(f"larder values are bytes or str, not {t.__name__} (give the cache a "
                    f"serializer, e.g. serializer='pickle', to store other objects)")


def _str_loads(data):
    return data.decode("utf-8")


def _pickle_dumps(value):
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


class Serializer:
    """How values become bytes and back: dumps(value) -> bytes (a str result
    is UTF-8 encoded) and loads(bytes) -> value; loads None means values come
    back as the bytes stored."""

    __slots__ = ("name", "dumps", "loads")

    def __init__(self, name, dumps, loads):
        self.name = name
        self.dumps = dumps
        self.loads = loads

    def __repr__(self):
        return f"<larder serializer {self.name}>"


RAW = Serializer("bytes", _raw_dumps, None)
STR = Serializer("str", _raw_dumps, _str_loads)
PICKLE = Serializer("pickle", _pickle_dumps, pickle.loads)


def _bytes_result(dumps):
    def encoded(value):
        data = dumps(value)
        return data.encode("utf-8") if isinstance(data, str) else bytes(data)
    return encoded


def serializer(spec):
    """The Serializer for a Cache's `serializer` option: None or "bytes"
    (bytes and str pass through, bytes come back), "str" (str comes back),
    "pickle", a (dumps, loads) pair, or any object with dumps and loads
    (the pickle module, json, a Serializer)."""
    if spec is None or spec == "bytes" or spec is bytes:
        return RAW
    if spec == "str" or spec is str:
        return STR
    if spec == "pickle" or spec is pickle:
        return PICKLE
    if isinstance(spec, Serializer):
        return spec
    if isinstance(spec, tuple) and len(spec) == 2 and all(callable(f) for f in spec):
        dumps, loads = spec
    elif callable(getattr(spec, "dumps", None)) and callable(getattr(spec, "loads", None)):
        dumps, loads = spec.dumps, spec.loads
    else:
        raise TypeError("serializer must be None, 'bytes', 'str', 'pickle', a (dumps, loads) "
                        f"pair or an object with dumps and loads, not {spec!r}")
    name = getattr(spec, "__name__", None) or "custom"
    return Serializer(name, _bytes_result(dumps), loads)
