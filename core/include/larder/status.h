// Status codes returned by every fallible Larder call. The numeric values are
// part of the C ABI (capi/) and are never renumbered; new codes go at the end.
#ifndef LARDER_STATUS_H_
#define LARDER_STATUS_H_

namespace larder {

enum class Status : int {
  kOk = 0,
  kNotFound = 1,         // no live entry for the key
  kInvalidArgument = 2,  // bad option value, negative TTL, NULL where data is needed
  kEmptyKey = 3,         // keys must be at least one byte
  kKeyTooLong = 4,       // key longer than kMaxKeyLength
  kValueTooLarge = 5,    // the entry's charge exceeds what one stripe may hold
  kBufferTooSmall = 6,   // GetInto: the caller's buffer cannot hold the value
  kNoMemory = 7,         // allocation failed; the cache is unchanged
  kLoadFailed = 8,       // the loader returned an error or threw (message alongside)
  kTimeout = 9,          // a waiter's deadline passed before the load finished
  kRecursiveLoad = 10,   // a loader asked the cache for the key it is loading
  kBusy = 11,            // a bounded queue was full (write-behind queue, refresh pool)
  kClosed = 12,          // the write-behind queue (or, in the C ABI, the cache) was closed
  kInternal = 13,        // (C ABI) an unexpected internal failure
  kWriteFailed = 14,     // the user's writer reported a failure (write-through)
  kIoError = 15,         // the write-behind journal could not be read or written
  kForked = 16,          // used in a child process after fork(): the object is the parent's
  kUnavailable = 17,     // the Redis second tier could not be reached or answered too late
};

// Never returns nullptr.
const char* StatusName(Status status);

}  // namespace larder

#endif  // LARDER_STATUS_H_
