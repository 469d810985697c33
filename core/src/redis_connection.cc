#include "redis_connection.h"

#include <string>

#include "larder/tiered.h"

namespace larder::internal {

timeval ToTimeval(std::chrono::nanoseconds d) {
  if (d.count() <= 0) d = std::chrono::milliseconds(1);
  timeval tv;
  tv.tv_sec = static_cast<time_t>(d.count() / 1'000'000'000);
  tv.tv_usec = static_cast<suseconds_t>((d.count() % 1'000'000'000) / 1000);
  if (tv.tv_sec == 0 && tv.tv_usec == 0) tv.tv_usec = 1;
  return tv;
}

std::unique_ptr<RedisConnection> RedisConnection::Open(const RedisOptions& o, Status* status,
                                                       std::string* error) {
  const std::string where = o.host + ":" + std::to_string(o.port);
  redisContext* c = redisConnectWithTimeout(o.host.c_str(), o.port, ToTimeval(o.connect_timeout));
  if (c == nullptr) {
    *status = Status::kNoMemory;
    *error = "out of memory connecting to Redis at " + where;
    return nullptr;
  }
  if (c->err != 0) {
    *status = Status::kUnavailable;
    *error = "cannot connect to Redis at " + where + ": " + c->errstr;
    redisFree(c);
    return nullptr;
  }
  std::unique_ptr<RedisConnection> conn(new RedisConnection(c));
  if (redisSetTimeout(c, ToTimeval(o.command_timeout)) != REDIS_OK) {
    *status = Status::kUnavailable;
    *error = "cannot set the command timeout on the connection to " + where;
    return nullptr;
  }
  auto fail = [&](const Reply& r, const std::string& what) {
    if (!r) {
      *status = Status::kUnavailable;
      *error = what + " at " + where + ": " + conn->error();
    } else {
      *status = Status::kInvalidArgument;
      *error = what + " at " + where + ": " + std::string(ReplyText(r.get()));
    }
    return nullptr;
  };
  if (!o.password.empty()) {
    Reply r = o.username.empty() ? conn->Run({"AUTH", o.password})
                                 : conn->Run({"AUTH", o.username, o.password});
    if (!r || IsError(r)) return fail(r, "Redis refused AUTH");
  }
  // A first command: answers NOAUTH when a password is needed and none was
  // given, and shows that the server speaks RESP at all.
  Reply id = conn->Run({"CLIENT", "ID"});
  if (!id || id->type != REDIS_REPLY_INTEGER) {
    if (id && id->type == REDIS_REPLY_ERROR && ReplyText(id.get()).starts_with("NOAUTH")) {
      return fail(id, "Redis requires a password (RedisOptions::password)");
    }
    if (id && id->type == REDIS_REPLY_ERROR) {
      return fail(id,
                  "Redis does not support client-side caching (CLIENT ID / CLIENT TRACKING, "
                  "Redis 6 or later)");
    }
    return fail(id, "unexpected answer to CLIENT ID");
  }
  conn->client_id = id->integer;
  if (o.database != 0) {
    Reply r = conn->Run({"SELECT", std::to_string(o.database)});
    if (!r || IsError(r)) return fail(r, "Redis refused SELECT " + std::to_string(o.database));
  }
  return conn;
}

RedisConnection::~RedisConnection() { redisFree(c_); }

void RedisConnection::Break(std::string why) {
  if (broken_) return;
  broken_ = true;
  error_ = std::move(why);
}

bool RedisConnection::Append(const Command& command) {
  const char* argv[16];
  size_t lens[16];
  std::vector<const char*> big_argv;
  std::vector<size_t> big_lens;
  const char** av = argv;
  size_t* al = lens;
  if (command.size() > 16) {
    big_argv.resize(command.size());
    big_lens.resize(command.size());
    av = big_argv.data();
    al = big_lens.data();
  }
  for (size_t i = 0; i < command.size(); ++i) {
    // hiredis reads `len` bytes from each pointer; an empty view may be null.
    av[i] = command[i].data() != nullptr ? command[i].data() : "";
    al[i] = command[i].size();
  }
  if (redisAppendCommandArgv(c_, static_cast<int>(command.size()), av, al) != REDIS_OK) {
    Break(c_->errstr[0] != '\0' ? c_->errstr : "out of memory formatting a command");
    return false;
  }
  return true;
}

bool RedisConnection::Pipeline(const std::vector<Command>& commands, std::vector<Reply>* replies) {
  replies->clear();
  if (broken_) return false;
  for (const Command& command : commands) {
    if (!Append(command)) return false;
  }
  for (size_t i = 0; i < commands.size(); ++i) {
    void* reply = nullptr;
    if (redisGetReply(c_, &reply) != REDIS_OK || reply == nullptr) {
      // A timeout shows as an I/O error with EAGAIN; either way the stream
      // can no longer be trusted.
      Break(c_->errstr[0] != '\0' ? c_->errstr : "connection lost");
      return false;
    }
    replies->emplace_back(static_cast<redisReply*>(reply));
  }
  return true;
}

Reply RedisConnection::Run(std::initializer_list<std::string_view> args) {
  std::vector<Reply> replies;
  if (!Pipeline({Command(args)}, &replies)) return nullptr;
  return std::move(replies[0]);
}

}  // namespace larder::internal
