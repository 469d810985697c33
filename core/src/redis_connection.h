// One blocking connection to Redis over hiredis 0.14 (RESP2), for the Redis
// second tier (redis_tier.cc). hiredis stays out of the public headers.
//
// Invariants:
//  * A connection is used by one thread at a time (the pool hands it out).
//  * Once an I/O error, a timeout or a protocol error happened the connection
//    is `broken()` for good: a late reply could still arrive and would be
//    taken for the answer to the next command. Broken connections are
//    discarded, never reused. An error *reply* (-ERR ...) does not break it.
#ifndef LARDER_CORE_SRC_REDIS_CONNECTION_H_
#define LARDER_CORE_SRC_REDIS_CONNECTION_H_

#include <hiredis/hiredis.h>

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "larder/status.h"

namespace larder {
struct RedisOptions;
}

namespace larder::internal {

struct ReplyDeleter {
  void operator()(redisReply* r) const {
    if (r != nullptr) freeReplyObject(r);
  }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

using Command = std::vector<std::string_view>;

inline bool IsError(const Reply& r) { return r && r->type == REDIS_REPLY_ERROR; }
inline std::string_view ReplyText(const redisReply* r) {
  return r != nullptr && r->str != nullptr ? std::string_view(r->str, r->len) : std::string_view();
}

class RedisConnection {
 public:
  // Connects, authenticates and selects the database. On failure returns
  // nullptr with *status kUnavailable (cannot connect, timed out) or
  // kInvalidArgument (the server refused: AUTH, SELECT), and a message.
  static std::unique_ptr<RedisConnection> Open(const RedisOptions& options, Status* status,
                                               std::string* error);
  ~RedisConnection();
  RedisConnection(const RedisConnection&) = delete;
  RedisConnection& operator=(const RedisConnection&) = delete;

  // Sends every command, then reads one reply per command (pipelined: one
  // round trip). False when the connection broke; replies may then be short.
  bool Pipeline(const std::vector<Command>& commands, std::vector<Reply>* replies);
  // One command; nullptr when the connection broke.
  Reply Run(std::initializer_list<std::string_view> args);

  bool broken() const { return broken_; }
  const std::string& error() const { return error_; }
  redisContext* context() { return c_; }
  int fd() const { return c_->fd; }
  // Marks the connection broken (a reply that made no sense, a read that
  // timed out in the caller's own poll loop).
  void Break(std::string why);

  // Set by the owner: the tracking session this connection's CLIENT TRACKING
  // points into (0: not tracked), and its CLIENT ID.
  uint64_t session = 0;
  long long client_id = 0;
  uint64_t serial = 0;  // the pool's name for it (affinity)

 private:
  explicit RedisConnection(redisContext* c) : c_(c) {}
  bool Append(const Command& command);
  redisContext* c_;
  bool broken_ = false;
  std::string error_;
};

timeval ToTimeval(std::chrono::nanoseconds d);

}  // namespace larder::internal

#endif  // LARDER_CORE_SRC_REDIS_CONNECTION_H_
