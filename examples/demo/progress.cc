#include "progress.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace demo {

namespace {
bool LocaleIsUtf8() {
  for (const char* name : {"LC_ALL", "LC_CTYPE", "LANG"}) {
    const char* v = std::getenv(name);
    if (v != nullptr && *v != '\0') return std::strstr(v, "UTF-8") || std::strstr(v, "utf8");
  }
  return false;
}
}  // namespace

Progress::Progress(bool tty) : tty_(tty), utf8_(LocaleIsUtf8()) {}

void Progress::Begin(const std::string& title) {
  if (active_) End("");
  title_ = title;
  detail_.clear();
  fraction_ = 0;
  active_ = true;
  started_ = Clock::now();
  if (tty_) {
    Draw(true);
  } else {
    std::printf("%s ...\n", title_.c_str());
    std::fflush(stdout);
  }
}

void Progress::Update(double fraction, const std::string& detail) {
  if (!active_) return;
  fraction_ = std::clamp(fraction, 0.0, 1.0);
  detail_ = detail;
  if (tty_) Draw(false);
}

void Progress::Draw(bool force) {
  Clock::time_point now = Clock::now();
  if (!force && now - drawn_ < 50ms) return;
  drawn_ = now;
  constexpr int kWidth = 24;
  int filled = static_cast<int>(fraction_ * kWidth + 0.5);
  std::string bar;
  for (int i = 0; i < kWidth; ++i) {
    if (utf8_) {
      bar += i < filled ? "\u2588" : "\u2591";
    } else {
      bar += i < filled ? '#' : '.';
    }
  }
  char head[128];
  std::snprintf(head, sizeof head, "%-34s ", title_.c_str());
  char tail[64];
  std::snprintf(tail, sizeof tail, " %3d%% %5.1f s  ", static_cast<int>(fraction_ * 100 + 0.5),
                Seconds(now - started_));
  // Never wider than the terminal: a wrapped line cannot be redrawn in place.
  int columns = 80;
  winsize ws;
  if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) columns = ws.ws_col;
  int room = columns - 1 - static_cast<int>(std::strlen(head) + std::strlen(tail)) - kWidth;
  std::string detail = detail_;
  if (room < static_cast<int>(detail.size())) detail.resize(static_cast<size_t>(std::max(0, room)));
  if (room < 0) bar.clear();  // a very narrow terminal: the title and the figures only
  std::printf("\r\033[K%s%s%s%s", head, bar.c_str(), tail, detail.c_str());
  std::fflush(stdout);
}

void Progress::End(const std::string& summary) {
  if (!active_) return;
  active_ = false;
  double took = Seconds(Clock::now() - started_);
  if (tty_) {
    std::printf("\r\033[K%s %-32s %5.1f s  %s\n", utf8_ ? "\u2713" : "*", title_.c_str(), took,
                summary.c_str());
  } else {
    std::printf("  done in %.1f s: %s\n", took, summary.c_str());
  }
  std::fflush(stdout);
}

void Progress::Note(const std::string& line) {
  if (tty_ && active_) std::printf("\r\033[K");
  std::printf("%s\n", line.c_str());
  if (tty_ && active_) Draw(true);
  std::fflush(stdout);
}

void Progress::Abandon() {
  if (tty_ && active_) std::printf("\r\033[K%s: interrupted\n", title_.c_str());
  active_ = false;
  std::fflush(stdout);
}

}  // namespace demo
