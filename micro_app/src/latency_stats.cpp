#include "latency_stats.h"

namespace kws {

constexpr int LatencyStats::kMaxWindow;

void LatencyStats::Init(int window) {
  window_ = window < 1 ? 1 : (window > kMaxWindow ? kMaxWindow : window);
  Reset();
}

void LatencyStats::Reset() {
  next_ = 0;
  size_ = 0;
  total_ = 0;
}

void LatencyStats::Add(uint32_t value) {
  values_[next_] = value;
  next_ = (next_ + 1) % window_;
  if (size_ < window_) ++size_;
  ++total_;
}

void LatencyStats::Summary(uint32_t* min, uint32_t* median, uint32_t* max) const {
  *min = *median = *max = 0;
  if (size_ == 0) return;
  // Insertion sort of at most 64 values: only runs when a report is printed.
  uint32_t sorted[kMaxWindow];
  for (int i = 0; i < size_; ++i) {
    const uint32_t v = values_[i];
    int j = i;
    for (; j > 0 && sorted[j - 1] > v; --j) sorted[j] = sorted[j - 1];
    sorted[j] = v;
  }
  *min = sorted[0];
  *median = sorted[size_ / 2];
  *max = sorted[size_ - 1];
}

}  // namespace kws
