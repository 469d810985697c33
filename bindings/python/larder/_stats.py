"""Cache and write-behind statistics as dataclasses, and Prometheus text."""
import dataclasses

# name: (Prometheus name suffix, type, help). Durations are exported in seconds.
_CACHE_METRICS = {
    "hits": ("hits_total", "counter", "Lookups that found a fresh value."),
    "misses": ("misses_total", "counter", "Lookups that found no live value."),
    "puts": ("puts_total", "counter", "Values stored."),
    "evictions": ("evictions_total", "counter", "Entries removed to stay within capacity."),
    "expirations": ("expirations_total", "counter", "Entries removed because their TTL passed."),
    "invalidations": ("invalidations_total", "counter", "Entries removed explicitly."),
    "entries": ("entries", "gauge", "Entries held, including expired ones not yet removed."),
    "bytes": ("bytes", "gauge", "Bytes charged against the capacity."),
    "capacity_bytes": ("capacity_bytes", "gauge", "The byte capacity."),
    "capacity_entries": ("capacity_entries", "gauge", "The entry bound (0: none)."),
    "dropped_promotions": ("dropped_promotions_total", "counter",
                           "LRU promotions skipped under contention."),
    "loads": ("loads_total", "counter", "Loader calls."),
    "load_failures": ("load_failures_total", "counter", "Loader calls that failed."),
    "load_time_ns": ("load_seconds_total", "counter", "Time spent in loaders."),
    "coalesced_waits": ("coalesced_waits_total", "counter",
                        "Callers that waited for another caller's load."),
    "refreshes_started": ("refreshes_started_total", "counter", "Background refreshes started."),
    "refreshes_discarded": ("refreshes_discarded_total", "counter",
                            "Refresh results discarded because a write raced them."),
    "loads_discarded": ("loads_discarded_total", "counter",
                        "Load results not cached because a write raced them."),
    "stale_hits": ("stale_hits_total", "counter", "Expired values served within a grace."),
    "negative_hits": ("negative_hits_total", "counter",
                      "Lookups answered by a cached 'not found' or error."),
    "load_timeouts": ("load_timeouts_total", "counter",
                      "Waiters whose deadline passed before the load finished."),
}

_WRITE_BEHIND_METRICS = {
    "queue_depth": ("queue_depth", "gauge", "Writes waiting to be delivered."),
    "queue_bytes": ("queue_bytes", "gauge", "Bytes of the writes waiting."),
    "oldest_pending_ns": ("oldest_pending_seconds", "gauge", "Age of the oldest waiting write."),
    "writes": ("writes_total", "counter", "Writes queued."),
    "coalesced": ("coalesced_total", "counter", "Writes superseded by a newer one of the key."),
    "delivered": ("delivered_total", "counter", "Writes the writer accepted."),
    "batches": ("batches_total", "counter", "Writer calls."),
    "retries": ("retries_total", "counter", "Writes retried after a failure."),
    "dead_letters": ("dead_letters_total", "counter", "Writes given to the dead-letter callback."),
    "rejected": ("rejected_total", "counter", "Writes refused (queue full, journal failure)."),
    "journal_bytes": ("journal_bytes", "gauge", "Bytes of the journal on disk."),
    "replayed_writes": ("replayed_writes_total", "counter", "Writes recovered from the journal."),
    "journal_truncated_bytes": ("journal_truncated_bytes_total", "counter",
                                "Torn journal bytes cut off at open."),
}


def _escape(value):
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _prometheus(obj, metrics, prefix, labels):
    label_text = ""
    if labels:
        label_text = "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"
    lines = []
    for field, (suffix, kind, help_text) in metrics.items():
        value = getattr(obj, field)
        if field.endswith("_ns"):
            value = value / 1e9
        name = f"{prefix}_{suffix}"
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        lines.append(f"{name}{label_text} {value}")
    return "\n".join(lines) + "\n"


@dataclasses.dataclass(frozen=True)
class Stats:
    """A snapshot of a cache's counters (summed over its stripes)."""

    hits: int = 0
    misses: int = 0
    puts: int = 0
    evictions: int = 0
    expirations: int = 0
    invalidations: int = 0
    entries: int = 0
    bytes: int = 0
    capacity_bytes: int = 0
    capacity_entries: int = 0
    dropped_promotions: int = 0
    loads: int = 0
    load_failures: int = 0
    load_time_ns: int = 0
    coalesced_waits: int = 0
    refreshes_started: int = 0
    refreshes_discarded: int = 0
    loads_discarded: int = 0
    stale_hits: int = 0
    negative_hits: int = 0
    load_timeouts: int = 0

    @property
    def hit_ratio(self):
        """hits / (hits + misses), 0.0 before any lookup."""
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def to_prometheus(self, prefix="larder", labels=None):
        """The Prometheus text exposition format (HELP, TYPE and one sample
        per counter and gauge; durations in seconds), with `labels` (a dict)
        on every sample."""
        return _prometheus(self, _CACHE_METRICS, prefix, labels)


@dataclasses.dataclass(frozen=True)
class WriteBehindStats:
    """A snapshot of a write-behind queue's counters."""

    queue_depth: int = 0
    queue_bytes: int = 0
    oldest_pending_ns: int = 0
    writes: int = 0
    coalesced: int = 0
    delivered: int = 0
    batches: int = 0
    retries: int = 0
    dead_letters: int = 0
    rejected: int = 0
    journal_bytes: int = 0
    replayed_writes: int = 0
    journal_truncated_bytes: int = 0

    def to_prometheus(self, prefix="larder_write_behind", labels=None):
        return _prometheus(self, _WRITE_BEHIND_METRICS, prefix, labels)


@dataclasses.dataclass(frozen=True)
class TierStats:
    """A snapshot of a TieredCache's counters: the Redis tier's own, and
    `l1`, the local cache's larder.Stats (its hits are the reads L1
    answered without Redis). breaker_state is "closed" (calls go to Redis),
    "open" (Redis failed breaker_failures times in a row: skipped) or
    "half_open" (one trial call)."""

    l2_hits: int = 0
    l2_misses: int = 0
    l2_errors: int = 0
    l2_skipped: int = 0
    loads: int = 0
    fills: int = 0
    fills_refused: int = 0
    bypassed_reads: int = 0
    invalidation_messages: int = 0
    invalidated_keys: int = 0
    flushes: int = 0
    tracking_losses: int = 0
    connection_losses: int = 0
    reconnects: int = 0
    tracking_up: bool = False
    breaker_state: str = "closed"
    breaker_opens: int = 0
    lock_acquired: int = 0
    lock_waits: int = 0
    lock_wait_hits: int = 0
    lock_fail_open: int = 0
    writes: int = 0
    write_failures: int = 0
    l1: Stats = dataclasses.field(default_factory=Stats)
