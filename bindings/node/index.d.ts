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

/** The same class under lru-cache's name, for `import { LRUCache } from 'larder'`. */
export { LarderCache as LRUCache };

export declare const version: string;
