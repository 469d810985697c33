// with_redis COMMAND [ARGS...]: runs COMMAND with a private redis-server
// (tests/redis/redis_server.h) whose port is in LARDER_TEST_REDIS_PORT, then
// stops the server. Exits with COMMAND's status; kills it after
// LARDER_TEST_TIMEOUT seconds (default 300). For tests that are not C++
// (the C ABI's), so that the test command itself starts and stops Redis.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "redis_server.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: with_redis COMMAND [ARGS...]\n");
    return 2;
  }
  larder::testing::RedisServer redis;
  std::string why;
  if (!redis.Start({}, &why)) {
    std::fprintf(stderr, "with_redis: %s\n", why.c_str());
    return 1;
  }
  const std::string port = std::to_string(redis.port());
  setenv("LARDER_TEST_REDIS_PORT", port.c_str(), 1);
  const char* limit_text = std::getenv("LARDER_TEST_TIMEOUT");
  const int limit = limit_text != nullptr ? std::atoi(limit_text) : 300;
  pid_t pid = fork();
  if (pid < 0) return 1;
  if (pid == 0) {
    execvp(argv[1], argv + 1);
    std::perror("with_redis: exec");
    _exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(limit);
  int status = 0;
  for (;;) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (std::chrono::steady_clock::now() >= deadline) {
      std::fprintf(stderr, "with_redis: %s timed out after %d s\n", argv[1], limit);
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      redis.Stop();
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  redis.Stop();
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  std::fprintf(stderr, "with_redis: %s died with signal %d\n", argv[1], WTERMSIG(status));
  return 1;
}
