// One progress bar per phase on a terminal; plain lines otherwise (a pipe, a
// log file, CI), so the output stays readable wherever it goes.
#ifndef LARDER_EXAMPLES_DEMO_PROGRESS_H_
#define LARDER_EXAMPLES_DEMO_PROGRESS_H_

#include <cstdio>
#include <string>

#include "demo.h"

namespace demo {

class Progress {
 public:
  // tty: redraw one line in place; otherwise print a line per phase.
  explicit Progress(bool tty);
  // Starts a phase: "[2/5] cache-aside with TTLs".
  void Begin(const std::string& title);
  // fraction in [0, 1]; detail: live figures ("hit ratio 91.2%").
  void Update(double fraction, const std::string& detail);
  // Ends the phase with its result in a few words.
  void End(const std::string& summary);
  // A line of its own, between phases (or under the bar, which is redrawn).
  void Note(const std::string& line);
  // Leaves the terminal clean (Ctrl-C in the middle of a bar).
  void Abandon();

 private:
  void Draw(bool force);
  bool tty_;
  bool utf8_;
  bool active_ = false;
  std::string title_, detail_;
  double fraction_ = 0;
  Clock::time_point started_, drawn_;
};

}  // namespace demo

#endif  // LARDER_EXAMPLES_DEMO_PROGRESS_H_
