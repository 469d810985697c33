/// <reference types="node" />
// Types of LarderCache, shaped like lru-cache's LRUCache<K, V, FC> so that
// code typed for LRUCache<K, V> compiles against LarderCache<K, V>. Keys are
// limited to what can be shared between workers: strings, numbers, Buffers.

/** What a key may be: each kind stays distinct (1, '1' and Buffer.from('1') are three keys). */
export type LarderKey = string | number | Buffer | Uint8Array;

export declare namespace LarderCache {
  type Size = number;
  type Milliseconds = number;
  type Count = number;
  /** lru-cache's reasons. */
  type DisposeReason = 'evict' | 'set' | 'delete' | 'expire' | 'fetch';
  type Disposer<K, V> = (value: V, key: K, reason: DisposeReason) => void;
  type InsertReason = 'add' | 'update' | 'replace';
  type Inserter<K, V> = (value: V, key: K, reason: InsertReason) => void;
  type SizeCalculator<K, V> = (value: V, key: K) => Size;

  interface Perf {
    now(): number;
  }

  interface FetcherFetchOptions<K, V, FC = unknown> {
    allowStale?: boolean;
    updateAgeOnGet?: boolean;
    noDeleteOnStaleGet?: boolean;
    sizeCalculation?: SizeCalculator<K, V>;
    ttl?: Milliseconds;
    noDisposeOnSet?: boolean;
    noUpdateTTL?: boolean;
    noDeleteOnFetchRejection?: boolean;
    allowStaleOnFetchRejection?: boolean;
    ignoreFetchAbort?: boolean;
    allowStaleOnFetchAbort?: boolean;
    size?: Size;
  }
  interface FetcherOptions<K, V, FC = unknown> {
    signal: AbortSignal;
    options: FetcherFetchOptions<K, V, FC>;
    context: FC;
  }
  interface FetchOptions<K, V, FC = unknown> extends FetcherFetchOptions<K, V, FC> {
    forceRefresh?: boolean;
    context?: FC;
    signal?: AbortSignal;
    /** Larder: a fetchMethod for this call only. */
    fetchMethod?: Fetcher<K, V, FC>;
  }
  type Fetcher<K, V, FC = unknown> = (
    key: K,
    staleValue: V | undefined,
    options: FetcherOptions<K, V, FC>,
  ) => Promise<V | undefined | void> | V | undefined | void;

  interface MemoizerOptions<K, V, FC = unknown> {
    options: SetOptions<K, V, FC>;
    context: FC;
  }
  type Memoizer<K, V, FC = unknown> = (
    key: K,
    staleValue: V | undefined,
    options: MemoizerOptions<K, V, FC>,
  ) => V;
  interface MemoOptions<K, V, FC = unknown> extends GetOptions<K, V, FC>, SetOptions<K, V, FC> {
    forceRefresh?: boolean;
    context?: FC;
    memoMethod?: Memoizer<K, V, FC>;
  }

  interface GetOptions<K, V, FC = unknown> {
    allowStale?: boolean;
    updateAgeOnGet?: boolean;
    noDeleteOnStaleGet?: boolean;
  }
  interface PeekOptions<K, V, FC = unknown> {
    allowStale?: boolean;
  }
  interface HasOptions<K, V, FC = unknown> {
    updateAgeOnHas?: boolean;
  }
  interface SetOptions<K, V, FC = unknown> {
    ttl?: Milliseconds;
    size?: Size;
    sizeCalculation?: SizeCalculator<K, V>;
    noDisposeOnSet?: boolean;
    noUpdateTTL?: boolean;
    start?: Milliseconds;
  }

  /** One write-behind write as writeBatch sees it. */
  interface QueuedWrite<K, V> {
    key: K;
    /** undefined for a delete */
    value: V | undefined;
    delete: boolean;
    /** 1 on the first delivery */
    attempt: number;
    /** recovered from the journal when the cache opened */
    replayed: boolean;
    /** grows with every write ever queued (across restarts, with a journal) */
    sequence: number;
  }
  interface WriteBehindOptions<K, V> {
    /** Writes a batch; resolves when all of it is stored, rejects to retry all of it. */
    writeBatch: (writes: QueuedWrite<K, V>[]) => unknown | Promise<unknown>;
    /** Gets a write that failed maxAttempts times. */
    deadLetter?: (write: QueuedWrite<K, V>, error: string) => void;
    maxBatch?: number;
    /** ms before a partial batch goes (default 50) */
    maxDelay?: Milliseconds;
    /** keys with a pending write (default 100,000); a full queue makes write() throw Busy */
    maxQueue?: number;
    /** bytes of pending keys and values (default 64 MiB) */
    maxQueueSize?: number;
    maxAttempts?: number;
    retryDelay?: Milliseconds;
    retryMaxDelay?: Milliseconds;
    journal?: {
      dir: string;
      sync?: 'every-write' | 'interval' | 'never';
      syncInterval?: Milliseconds;
      segmentSize?: number;
    };
  }

  interface Options<K, V, FC = unknown> {
    /** Maximum number of entries. */
    max?: Count;
    /** Maximum sum of the entries' sizes (sizeCalculation or set's size), as lru-cache. */
    maxSize?: Size;
    /** Larder: maximum bytes (key + value + per-entry overhead); not with maxSize. */
    maxBytes?: number;
    maxEntrySize?: Size;
    sizeCalculation?: SizeCalculator<K, V>;
    ttl?: Milliseconds;
    /** Accepted for lru-cache's sake; Larder always checks expiry against its own clock. */
    ttlResolution?: Milliseconds;
    ttlAutopurge?: boolean;
    updateAgeOnGet?: boolean;
    updateAgeOnHas?: boolean;
    allowStale?: boolean;
    noDeleteOnStaleGet?: boolean;
    dispose?: Disposer<K, V>;
    disposeAfter?: Disposer<K, V>;
    onInsert?: Inserter<K, V>;
    noDisposeOnSet?: boolean;
    noUpdateTTL?: boolean;
    fetchMethod?: Fetcher<K, V, FC>;
    memoMethod?: Memoizer<K, V, FC>;
    noDeleteOnFetchRejection?: boolean;
    allowStaleOnFetchRejection?: boolean;
    allowStaleOnFetchAbort?: boolean;
    ignoreFetchAbort?: boolean;
    perf?: Perf;
    /** Larder: stripes of the native cache (default: the engine picks). */
    stripes?: number;
    /** Larder: use a cache another worker shares (its share()). */
    handle?: SharedHandle | number;
    /** Larder: fetch() serves a value this long past its TTL while one refresh runs. */
    staleWhileRevalidate?: Milliseconds;
    /** Larder: a failed load answers with a value this long past its TTL. */
    staleIfError?: Milliseconds;
    /** Larder: early refresh (XFetch) factor for fetch(); 0 (default) disables. */
    refreshBeta?: number;
    /** Larder: load time assumed for set() entries in early refresh (ms). */
    refreshDelta?: Milliseconds;
    /** Larder: how long a fetchMethod's undefined is remembered (ms; 0: not). */
    negativeTtl?: Milliseconds;
    /** Larder: how long a fetchMethod's failure is remembered (ms; 0: not). */
    errorTtl?: Milliseconds;
    /** Larder: write-through: write() calls this first, then updates the cache. */
    writeMethod?: (key: K, value: V | undefined) => unknown | Promise<unknown>;
    /** Larder: write-behind: write() updates the cache now, the store in batches. */
    writeBehind?: WriteBehindOptions<K, V>;
    /** Larder: seed of early refresh's random draws (tests). */
    seed?: number;
  }

  interface Entry<V> {
    value: V;
    ttl?: Milliseconds;
    size?: Size;
    start?: Milliseconds;
  }

  /** share()'s result: plain data to post to another worker. */
  interface SharedHandle {
    id: number;
    [setting: string]: unknown;
  }

  interface Stats {
    hits: number;
    misses: number;
    staleHits: number;
    negativeHits: number;
    puts: number;
    evictions: number;
    expirations: number;
    invalidations: number;
    entries: number;
    bytes: number;
    capacityBytes: number;
    capacityEntries: number;
    droppedPromotions: number;
    loads: number;
    loadFailures: number;
    loadTimeNs: number;
    coalescedWaits: number;
    refreshesStarted: number;
    refreshesDiscarded: number;
    loadsDiscarded: number;
    loadTimeouts: number;
    writeBehind?: {
      queueDepth: number;
      queueBytes: number;
      oldestPendingMs: number;
      writes: number;
      coalesced: number;
      delivered: number;
      batches: number;
      retries: number;
      deadLetters: number;
      rejected: number;
      journalBytes: number;
      replayedWrites: number;
    };
  }
}

export declare class LarderError extends Error {
  /** The C ABI's status code (docs/errors.md); `name` is its class: Closed, KeyTooLong, ... */
  code: number;
}

export declare class LarderCache<K extends LarderKey = string, V extends {} = {}, FC = unknown> {
  constructor(options: LarderCache.Options<K, V, FC>);

  ttl: LarderCache.Milliseconds;
  ttlResolution: LarderCache.Milliseconds;
  ttlAutopurge: boolean;
  updateAgeOnGet: boolean;
  updateAgeOnHas: boolean;
  allowStale: boolean;
  noDisposeOnSet: boolean;
  noUpdateTTL: boolean;
  maxEntrySize: LarderCache.Size;
  sizeCalculation?: LarderCache.SizeCalculator<K, V>;
  noDeleteOnFetchRejection: boolean;
  noDeleteOnStaleGet: boolean;
  allowStaleOnFetchAbort: boolean;
  allowStaleOnFetchRejection: boolean;
  ignoreFetchAbort: boolean;
  readonly max: LarderCache.Count;
  readonly maxSize: LarderCache.Size;
  readonly maxBytes: number;
  readonly calculatedSize: LarderCache.Size;
  readonly size: LarderCache.Count;
  readonly perf: LarderCache.Perf;
  readonly fetchMethod: LarderCache.Fetcher<K, V, FC> | undefined;
  readonly memoMethod: LarderCache.Memoizer<K, V, FC> | undefined;
  readonly dispose: LarderCache.Disposer<K, V> | undefined;
  readonly disposeAfter: LarderCache.Disposer<K, V> | undefined;
  readonly onInsert: LarderCache.Inserter<K, V> | undefined;
  readonly [Symbol.toStringTag]: string;

  get(k: K, getOptions?: LarderCache.GetOptions<K, V, FC>): V | undefined;
  peek(k: K, peekOptions?: LarderCache.PeekOptions<K, V, FC>): V | undefined;
  has(k: K, hasOptions?: LarderCache.HasOptions<K, V, FC>): boolean;
  set(k: K, v: V | undefined, setOptions?: LarderCache.SetOptions<K, V, FC>): this;
  delete(k: K): boolean;
  clear(): void;
  getRemainingTTL(key: K): number;
  info(key: K): LarderCache.Entry<V> | undefined;
  purgeStale(): boolean;
  pop(): V | undefined;
  dump(): [K, LarderCache.Entry<V>][];
  load(arr: [K, LarderCache.Entry<V>][]): void;

  entries(): Generator<[K, V], void, unknown>;
  rentries(): Generator<[K, V], void, unknown>;
  keys(): Generator<K, void, unknown>;
  rkeys(): Generator<K, void, unknown>;
  values(): Generator<V, void, unknown>;
  rvalues(): Generator<V, void, unknown>;
  [Symbol.iterator](): Generator<[K, V], void, unknown>;
  forEach(fn: (v: V, k: K, self: LarderCache<K, V, FC>) => unknown, thisp?: unknown): void;
  rforEach(fn: (v: V, k: K, self: LarderCache<K, V, FC>) => unknown, thisp?: unknown): void;
  find(
    fn: (v: V, k: K, self: LarderCache<K, V, FC>) => boolean,
    getOptions?: LarderCache.GetOptions<K, V, FC>,
  ): V | undefined;

  fetch(k: K, fetchOptions?: LarderCache.FetchOptions<K, V, FC>): Promise<V | undefined>;
  forceFetch(k: K, fetchOptions?: LarderCache.FetchOptions<K, V, FC>): Promise<V>;
  memo(k: K, memoOptions?: LarderCache.MemoOptions<K, V, FC>): V;

  /** Removes every key that starts with prefix (strings match string keys, Buffers Buffer keys). */
  deletePrefix(prefix: string | Buffer | Uint8Array): number;
  /** The same as deletePrefix. */
  invalidatePrefix(prefix: string | Buffer | Uint8Array): number;
  /** Write-through (writeMethod) or write-behind (writeBehind); v undefined deletes. */
  write(k: K, v: V | undefined, options?: { ttl?: LarderCache.Milliseconds }): Promise<void>;
  /** Waits until every write-behind write queued so far is delivered (or dead-lettered). */
  flush(timeoutMs?: number): Promise<void>;
  stats(): LarderCache.Stats;
  /** The statistics in Prometheus' text exposition format. */
  metrics(options?: { prefix?: string; labels?: Record<string, string | number> }): string;

  /** Plain data another worker passes as `handle` to use this same native cache. */
  share(): LarderCache.SharedHandle;
  /** Releases this handle only (the native cache ends with its last handle). */
  close(): Promise<void>;
  /** Ends the native cache for every handle in every worker. */
  closeAll(): Promise<void>;
}

/** A key of a TieredCache: its bytes are the Redis key (a string as UTF-8). */
export type TieredKey = string | Buffer | Uint8Array;

export declare namespace TieredCache {
  type Milliseconds = number;
  interface Options {
    /** L1: at most this many entries (0: no count bound). */
    max?: number;
    /** L1: at most this many bytes (64 MiB by default). */
    maxBytes?: number;
    /** The same as maxBytes (give one of them). */
    maxSize?: number;
    /** Redis: '127.0.0.1' by default. */
    host?: string;
    /** Redis: 6379 by default. */
    port?: number;
    /** ACL user (AUTH user password); without it AUTH uses the password only. */
    username?: string;
    password?: string;
    /** The database to SELECT (0). */
    db?: number;
    /** 1000 ms. */
    connectTimeout?: Milliseconds;
    /** 250 ms: a slower answer counts as a failure (a miss for reads). */
    commandTimeout?: Milliseconds;
    /** Data connections to Redis (8). */
    maxConnections?: number;
    /** 'default': Redis reports the keys this process read; 'broadcast': every key under prefixes. */
    tracking?: 'default' | 'broadcast';
    /** Broadcast prefixes (must not overlap); giving them implies tracking 'broadcast'. Keys outside are never kept in L1. */
    prefixes?: string[];
    /** L1 keeps nothing longer than this (60 s). */
    l1MaxTtl?: Milliseconds;
    /** The Redis TTL of loaded values and of set() without a ttl (5 min). */
    redisTtl?: Milliseconds;
    /** The staleness bound (1 s; at least healthInterval + 2 x commandTimeout + 50 ms). */
    maxStaleness?: Milliseconds;
    /** Between pings of the invalidation connection (100 ms). */
    healthInterval?: Milliseconds;
    /** One loader across all processes for a missing key (a lock in Redis; an efficiency guard). */
    lock?: boolean;
    /** The lock keys' prefix ('lock:'). */
    lockPrefix?: string;
    /** 5000 ms. */
    lockLease?: Milliseconds;
    /** 2 ms. */
    lockPollMin?: Milliseconds;
    /** 50 ms. */
    lockPollMax?: Milliseconds;
    /** Consecutive Redis failures that open the circuit breaker (5). */
    breakerFailures?: number;
    /** How long the breaker stays open (1000 ms). */
    breakerOpenTime?: Milliseconds;
  }
  /** A synchronous loader: the value, or undefined for "not found"; a throw propagates from get(). */
  type Loader<V> = (key: TieredKey) => V | undefined;
  interface Stats {
    l1Hits: number;
    l1Misses: number;
    l1Entries: number;
    l1Bytes: number;
    l2Hits: number;
    l2Misses: number;
    l2Errors: number;
    l2Skipped: number;
    loads: number;
    fills: number;
    fillsRefused: number;
    bypassedReads: number;
    invalidationMessages: number;
    invalidatedKeys: number;
    flushes: number;
    trackingLosses: number;
    connectionLosses: number;
    reconnects: number;
    breakerOpens: number;
    lockAcquired: number;
    lockWaits: number;
    lockWaitHits: number;
    lockFailOpen: number;
    writes: number;
    writeFailures: number;
    /** False while tracking is down: reads then skip L1 and ask Redis. */
    trackingUp: boolean;
    /** The circuit breaker in front of Redis. */
    breaker: 'closed' | 'open' | 'half-open';
  }
}

/**
 * A cache in this process (L1) in front of one Redis every process shares
 * (L2). Synchronous: an L1 miss blocks the thread on Redis (each round trip
 * at most commandTimeout) and on the loader. Throws a LarderError named
 * 'Unavailable' when Redis cannot be reached (create) or written (set,
 * delete, invalidate).
 */
export declare class TieredCache<V = unknown> {
  constructor(options?: TieredCache.Options);
  get(key: TieredKey, loader?: TieredCache.Loader<V>): V | undefined;
  set(key: TieredKey, value: V | undefined, options?: { ttl?: TieredCache.Milliseconds }): this;
  delete(key: TieredKey): void;
  invalidate(key: TieredKey): void;
  stats(): TieredCache.Stats;
  readonly closed: boolean;
  close(): void;
}

/** The same class under lru-cache's name, for `import { LRUCache } from 'larder'`. */
export { LarderCache as LRUCache };

export declare const version: string;
