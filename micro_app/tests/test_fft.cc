#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "fft.h"

namespace {

TEST(RealFft512, MatchesNaiveDft) {
  kws::RealFft512 fft;
  fft.Init();
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (int trial = 0; trial < 3; ++trial) {
    std::vector<float> x(512), work(512), re(257), im(257);
    for (auto& v : x) v = u(rng);
    fft.Transform(x.data(), work.data(), re.data(), im.data());
    double max_err = 0.0, max_mag = 0.0;
    for (int k = 0; k < 257; ++k) {
      double sr = 0.0, si = 0.0;
      for (int n = 0; n < 512; ++n) {
        const double a = -2.0 * M_PI * k * n / 512.0;
        sr += x[n] * std::cos(a);
        si += x[n] * std::sin(a);
      }
      max_err = std::max(max_err, std::hypot(sr - re[k], si - im[k]));
      max_mag = std::max(max_mag, std::hypot(sr, si));
    }
    // float32 rounding over 9 stages: ~1e-6 of the largest bin.
    EXPECT_LT(max_err, 2e-6 * max_mag) << "trial " << trial;
  }
}

TEST(RealFft512, PowerSpectrumOfCosineAndDc) {
  kws::RealFft512 fft;
  fft.Init();
  std::vector<float> x(512), work(512), power(257);
  for (int n = 0; n < 512; ++n) x[n] = 1.0f + std::cos(2.0 * M_PI * 37 * n / 512.0);
  fft.PowerSpectrum(x.data(), work.data(), power.data());
  EXPECT_NEAR(power[0], 512.0f * 512.0f, 1.0f);
  EXPECT_NEAR(power[37], 256.0f * 256.0f, 1.0f);
  for (int k = 1; k < 257; ++k) {
    if (k != 37) {
      EXPECT_LT(power[k], 1e-3f) << k;
    }
  }
  // Nyquist: alternating signs.
  for (int n = 0; n < 512; ++n) x[n] = (n % 2) ? -1.0f : 1.0f;
  fft.PowerSpectrum(x.data(), work.data(), power.data());
  EXPECT_NEAR(power[256], 512.0f * 512.0f, 1.0f);
  EXPECT_LT(power[0], 1e-3f);
}

TEST(RealFft512, Int16WindowedEntryMatchesFloatPath) {
  kws::RealFft512 fft;
  fft.Init();
  std::mt19937 rng(5);
  std::uniform_int_distribution<int> u(-32768, 32767);
  std::vector<int16_t> samples(400);
  std::vector<float> window(400), x(512, 0.0f), work(512), power(257), power4(257);
  for (int n = 0; n < 400; ++n) {
    samples[n] = static_cast<int16_t>(u(rng));
    window[n] = 0.5f - 0.5f * std::cos(2.0f * static_cast<float>(M_PI) * n / 400.0f);
    x[n] = static_cast<float>(samples[n]) * window[n];
  }
  fft.PowerSpectrum(x.data(), work.data(), power.data());
  fft.PowerSpectrumTimes4(samples.data(), window.data(), 400, work.data(), power4.data());
  for (int k = 0; k < 257; ++k) {
    // Same arithmetic except the zero-padding shortcut: equal to rounding.
    EXPECT_NEAR(power4[k] * 0.25f, power[k], 1e-5f * power[k] + 1e-3f) << k;
  }
}

}  // namespace
