#include "redis_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <thread>

namespace larder::testing {

namespace {

using Clock = std::chrono::steady_clock;

std::string ReplyToText(const redisReply* r) {
  switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
      return std::string(r->str, r->len);
    case REDIS_REPLY_INTEGER:
      return std::to_string(r->integer);
    case REDIS_REPLY_NIL:
      return "(nil)";
    case REDIS_REPLY_ARRAY: {
      std::string out;
      for (size_t i = 0; i < r->elements; ++i) {
        if (i != 0) out += '\n';
        out += ReplyToText(r->element[i]);
      }
      return out;
    }
  }
  return "?";
}

// Waits for the child to exit, up to `limit`; true if it did.
bool WaitExit(pid_t pid, std::chrono::milliseconds limit) {
  const auto deadline = Clock::now() + limit;
  for (;;) {
    int status = 0;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid || (r < 0 && errno == ECHILD)) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

}  // namespace

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  close(fd);
  return port;
}

bool RedisServer::Start(const std::vector<std::string>& extra, std::string* error) {
  Stop();
  const char* env = std::getenv("LARDER_REDIS_SERVER");
  const std::string binary = env != nullptr && env[0] != '\0' ? env : "redis-server";
  std::string why = "no attempt";
  for (int attempt = 0; attempt < 5; ++attempt) {
    const int port = FreePort();
    if (port == 0) {
      why = "no free port";
      continue;
    }
    std::vector<std::string> args = {
        binary,         "--port", std::to_string(port), "--bind", "127.0.0.1", "--save", "",
        "--appendonly", "no",     "--daemonize",        "no"};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
      why = "fork failed";
      continue;
    }
    if (pid == 0) {
      // Dies with the thread that started it, even if the test is killed.
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(127);
      int null = open("/dev/null", O_RDWR);
      if (null >= 0) {
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
      }
      execvp(argv[0], argv.data());
      _exit(127);
    }
    pid_ = pid;
    port_ = port;
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (Clock::now() < deadline) {
      int status = 0;
      if (waitpid(pid, &status, WNOHANG) == pid) {  // exited: the port was taken, or no binary
        pid_ = -1;
        why = WIFEXITED(status) && WEXITSTATUS(status) == 127
                  ? binary + " could not be run (install redis-server)"
                  : "redis-server exited at startup (port " + std::to_string(port) + ")";
        break;
      }
      // Up once it answers at all (a server with a password says NOAUTH).
      const std::string pong = Command({"PING"});
      if (pong == "PONG" || pong.starts_with("NOAUTH")) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (pid_ > 0) {
      why = "redis-server did not answer PING within 10 s";
      Stop();
    }
  }
  if (error != nullptr) *error = why;
  return false;
}

void RedisServer::Stop() {
  if (pid_ <= 0) return;
  if (paused_) Resume();
  kill(pid_, SIGTERM);
  if (!WaitExit(pid_, std::chrono::seconds(5))) {
    kill(pid_, SIGKILL);
    WaitExit(pid_, std::chrono::seconds(5));
  }
  pid_ = -1;
}

void RedisServer::Pause() {
  if (pid_ > 0 && !paused_) {
    kill(pid_, SIGSTOP);
    // Returns once it has stopped, so a test can take "paused since" after
    // this call: nothing it answers later was asked after that moment.
    int status = 0;
    pid_t r;
    while ((r = waitpid(pid_, &status, WUNTRACED)) < 0 && errno == EINTR) {
    }
    if (r == pid_ && !WIFSTOPPED(status)) {
      pid_ = -1;  // it had died, and is reaped now: nothing to resume or stop
      return;
    }
    paused_ = true;
  }
}

void RedisServer::Resume() {
  if (pid_ > 0 && paused_) {
    kill(pid_, SIGCONT);
    paused_ = false;
  }
}

std::string RedisServer::Command(const std::vector<std::string>& args) const {
  timeval tv{1, 0};
  redisContext* c = redisConnectWithTimeout("127.0.0.1", port_, tv);
  if (c == nullptr) return "<io error: out of memory>";
  if (c->err != 0) {
    std::string e = std::string("<io error: ") + c->errstr + ">";
    redisFree(c);
    return e;
  }
  redisSetTimeout(c, tv);
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (const std::string& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  auto* r = static_cast<redisReply*>(
      redisCommandArgv(c, static_cast<int>(args.size()), argv.data(), lens.data()));
  std::string out = r != nullptr ? ReplyToText(r) : std::string("<io error: ") + c->errstr + ">";
  if (r != nullptr) freeReplyObject(r);
  redisFree(c);
  return out;
}

}  // namespace larder::testing
