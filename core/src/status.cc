#include "larder/status.h"

namespace larder {

const char* StatusName(Status status) {
  switch (status) {
    case Status::kOk: return "ok";
    case Status::kNotFound: return "not found";
    case Status::kInvalidArgument: return "invalid argument";
    case Status::kEmptyKey: return "empty key";
    case Status::kKeyTooLong: return "key too long";
    case Status::kValueTooLarge: return "value too large for the cache";
    case Status::kBufferTooSmall: return "buffer too small";
    case Status::kNoMemory: return "out of memory";
  }
  return "unknown status";
}

}  // namespace larder
