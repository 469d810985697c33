#include "larder/status.h"

namespace larder {

const char* StatusName(Status status) {
  switch (status) {
    case Status::kOk:
      return "ok";
    case Status::kNotFound:
      return "not found";
    case Status::kInvalidArgument:
      return "invalid argument";
    case Status::kEmptyKey:
      return "empty key";
    case Status::kKeyTooLong:
      return "key too long";
    case Status::kValueTooLarge:
      return "value too large for the cache";
    case Status::kBufferTooSmall:
      return "buffer too small";
    case Status::kNoMemory:
      return "out of memory";
    case Status::kLoadFailed:
      return "load failed";
    case Status::kTimeout:
      return "timed out waiting for a load";
    case Status::kRecursiveLoad:
      return "a loader asked for its own key";
    case Status::kBusy:
      return "queue full";
    case Status::kClosed:
      return "closed";
    case Status::kInternal:
      return "internal error";
    case Status::kWriteFailed:
      return "the writer failed";
    case Status::kIoError:
      return "journal I/O error";
    case Status::kForked:
      return "created by the parent process before fork(): only destroy it in the child, and "
             "create a new cache there";
    case Status::kUnavailable:
      return "Redis unavailable: cannot connect, timed out, or the tier is not built in";
  }
  return "unknown status";
}

}  // namespace larder
