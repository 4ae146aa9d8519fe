// min / median / max of the last K durations, for the BENCH line. The
// median (not the mean) because one interrupt-delayed sample must not move
// the figure that goes into the report.
#ifndef KWS_LATENCY_STATS_H_
#define KWS_LATENCY_STATS_H_

#include <stdint.h>

namespace kws {

class LatencyStats {
 public:
  static constexpr int kMaxWindow = 64;

  // window: K, clamped to [1, kMaxWindow].
  void Init(int window);
  void Reset();
  void Add(uint32_t value);

  // Over the last min(count, K) values; all zero if none yet.
  void Summary(uint32_t* min, uint32_t* median, uint32_t* max) const;
  uint32_t count() const { return total_; }  // values ever added since Reset

 private:
  uint32_t values_[kMaxWindow];
  int window_ = kMaxWindow;
  int next_ = 0;
  int size_ = 0;
  uint32_t total_ = 0;
};

}  // namespace kws

#endif  // KWS_LATENCY_STATS_H_
