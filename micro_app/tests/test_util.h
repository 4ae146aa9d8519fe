// Shared helpers for the host tests. Including the core headers before the
// generated kws_settings.h enables its SettingsFrontendTables() /
// SettingsAppConfig() glue, exactly as the board sketch uses it.
#ifndef KWS_TESTS_TEST_UTIL_H_
#define KWS_TESTS_TEST_UTIL_H_

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "kws_app.h"
#include "mfcc_frontend.h"
#include "kws_settings.h"

namespace kws_test {

inline std::vector<int16_t> Tone(double hz, double seconds, double amplitude, int rate = 16000) {
  std::vector<int16_t> out(static_cast<size_t>(seconds * rate));
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = static_cast<int16_t>(std::lround(amplitude * 32767.0 * std::sin(2.0 * M_PI * hz * i / rate)));
  }
  return out;
}

inline std::vector<int16_t> Noise(size_t n, double amplitude, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> g(0.0, amplitude * 32767.0);
  std::vector<int16_t> out(n);
  for (auto& v : out) {
    const double x = g(rng);
    v = static_cast<int16_t>(std::max(-32768.0, std::min(32767.0, std::round(x))));
  }
  return out;
}

// Collects every frame a front-end produces.
class Collector : public kws::FrameSink {
 public:
  void OnFrame(const int8_t* features, const float* mfcc) override {
    features_.insert(features_.end(), features, features + kws::dims::kNumMfcc);
    mfcc_.insert(mfcc_.end(), mfcc, mfcc + kws::dims::kNumMfcc);
  }
  std::vector<int8_t> features_;
  std::vector<float> mfcc_;
};

}  // namespace kws_test

#endif  // KWS_TESTS_TEST_UTIL_H_
