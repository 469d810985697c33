#include <algorithm>
#include <cmath>
#include <thread>

#include "demo.h"

namespace demo {

std::atomic<int> g_signal{0};

std::vector<Sample> Merge(std::vector<std::vector<Sample>>& per_thread) {
  size_t n = 0;
  for (const auto& v : per_thread) n += v.size();
  std::vector<Sample> all;
  all.reserve(n);
  for (auto& v : per_thread) {
    all.insert(all.end(), v.begin(), v.end());
    std::vector<Sample>().swap(v);
  }
  return all;
}

LatencySummary Summarize(const std::vector<Sample>& samples) {
  LatencySummary s;
  s.count = samples.size();
  if (samples.empty()) return s;
  std::vector<float> ms;
  ms.reserve(samples.size());
  double sum = 0;
  for (const Sample& x : samples) {
    ms.push_back(x.latency_ms);
    sum += x.latency_ms;
  }
  auto at = [&](double q) {
    size_t k = std::min(ms.size() - 1, static_cast<size_t>(q * static_cast<double>(ms.size())));
    std::nth_element(ms.begin(), ms.begin() + static_cast<ptrdiff_t>(k), ms.end());
    return static_cast<double>(ms[k]);
  };
  s.p50_ms = at(0.50);
  s.p99_ms = at(0.99);
  s.max_ms = *std::max_element(ms.begin(), ms.end());
  s.mean_ms = sum / static_cast<double>(ms.size());
  return s;
}

Zipf::Zipf(int64_t n, double s) : cdf_(static_cast<size_t>(std::max<int64_t>(n, 1))) {
  double sum = 0;
  for (size_t i = 0; i < cdf_.size(); ++i) {
    sum += 1.0 / std::pow(static_cast<double>(i + 1), s);
    cdf_[i] = sum;
  }
  for (double& c : cdf_) c /= sum;
}

int64_t Zipf::operator()(std::mt19937_64& rng) const {
  double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
  size_t i = static_cast<size_t>(std::lower_bound(cdf_.begin(), cdf_.end(), u) - cdf_.begin());
  return static_cast<int64_t>(std::min(i, cdf_.size() - 1)) + 1;
}

const char* HitRatioReading(double hit_ratio) {
  if (hit_ratio > 0.95) return "excellent";
  if (hit_ratio >= 0.80) return "good";
  if (hit_ratio >= 0.60) return "investigate";
  return "barely helping";
}

std::string Thousands(uint64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

void SleepUntil(Clock::time_point until) {
  while (!Interrupted()) {
    Clock::time_point now = Clock::now();
    if (now >= until) return;
    std::this_thread::sleep_for(std::min<Clock::duration>(until - now, 50ms));
  }
}

}  // namespace demo
