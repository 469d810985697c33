/// <reference types="node" />
export type Value = string | Buffer | number | boolean | null | object;

export interface LarderOptions<V extends Value = Value> {
  /** Maximum number of entries (0: no entry bound). */
  max?: number;
  /** Maximum bytes (key + value + per-entry overhead); default 64 MiB. */
  maxSize?: number;
  /** Default time to live in milliseconds (0: none). */
  ttl?: number;
  /** Loads a missing key for fetch(); undefined means "not found". */
  fetchMethod?: (key: string | Buffer, staleValue: undefined,
                 options: { signal: AbortSignal }) => V | undefined | Promise<V | undefined>;
  stripes?: number;
  /** Attach to a cache shared by another worker (from share()). */
  handle?: number;
  /** Not supported yet: throws when true. */
  allowStale?: boolean;
}

export interface LarderStats {
  hits: number; misses: number; puts: number; evictions: number; expirations: number;
  invalidations: number; entries: number; bytes: number; loads: number;
  coalescedWaits: number; loadFailures: number;
}

export class LarderError extends Error {
  /** The C ABI status code (docs/errors.md); `name` is its class name. */
  code: number;
}

export class LarderCache<V extends Value = Value> {
  constructor(options?: LarderOptions<V>);
  get(key: string | Buffer): V | undefined;
  set(key: string | Buffer, value: V, options?: { ttl?: number }): this;
  has(key: string | Buffer): boolean;
  delete(key: string | Buffer): boolean;
  clear(): void;
  readonly size: number;
  stats(): LarderStats;
  fetch(key: string | Buffer, options?: { ttl?: number;
        fetchMethod?: LarderOptions<V>['fetchMethod'] }): Promise<V | undefined>;
  share(): number;
  close(): void;
}

export const version: string;
