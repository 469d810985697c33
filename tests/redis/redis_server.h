// A redis-server of the test's own: 127.0.0.1, a free port, no persistence,
// a child process (not daemonized) that dies with the thread that started it
// and is stopped (SIGTERM, then SIGKILL) by Stop() or the destructor. Every
// wait is bounded. Tests and larder-bench talk to no other Redis.
#ifndef LARDER_TESTS_REDIS_REDIS_SERVER_H_
#define LARDER_TESTS_REDIS_REDIS_SERVER_H_

#include <sys/types.h>

#include <string>
#include <vector>

namespace larder::testing {

class RedisServer {
 public:
  RedisServer() = default;
  ~RedisServer() { Stop(); }
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  // Starts the server (the binary: $LARDER_REDIS_SERVER, else redis-server on
  // PATH) with `extra` arguments appended, and waits until it answers PING
  // (at most 10 s). Retries on another port if the chosen one was taken.
  bool Start(const std::vector<std::string>& extra = {}, std::string* error = nullptr);
  // Stops it: SIGTERM, up to 5 s, then SIGKILL. Idempotent.
  void Stop();
  // SIGSTOP / SIGCONT: a server that hangs without closing its sockets.
  void Pause();
  void Resume();

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0; }

  // One command on a fresh connection (1 s timeouts), for setting up and
  // checking state: the reply as text ("(nil)" for a null, "ERR ..." for
  // an error, "1" for an integer, elements joined by '\n' for an array), or
  // "<io error: ...>" when the server could not be asked.
  std::string Command(const std::vector<std::string>& args) const;

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  bool paused_ = false;
};

// A TCP port on 127.0.0.1 that was free a moment ago.
int FreePort();

}  // namespace larder::testing

#endif  // LARDER_TESTS_REDIS_REDIS_SERVER_H_
