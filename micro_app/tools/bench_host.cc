// Host benchmark of the portable core, meant to run under
//   valgrind --tool=callgrind --toggle-collect=kws_bench_mfcc ...
// so that the instruction count of exactly N front-end frames (or N
// recogniser steps) is collected (benchmarks/micro_core_cost.py does this).
// Without valgrind it prints host wall-clock figures.
//
//   kws_bench_host [mfcc|recognizer|all] [N]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "kws_app.h"
#include "mfcc_frontend.h"
#include "recognizer.h"
#include "kws_settings.h"

namespace {

kws::MfccFrontend g_frontend;
kws::Recognizer g_recognizer;
std::vector<int16_t> g_audio;
std::vector<uint8_t> g_scores;
volatile int g_sink;

}  // namespace

// extern "C" + noinline: stable, unmangled names for --toggle-collect.
extern "C" __attribute__((noinline)) void kws_bench_mfcc(int frames) {
  // One hop per call, as on the board: each call computes exactly one frame
  // (history shift, window, FFT, mel, log, DCT, normalise, quantise).
  const int16_t* p = g_audio.data();
  int produced = 0;
  for (int i = 0; i < frames; ++i) {
    produced += g_frontend.FeedSamples(p, kws::kHopSamples, nullptr);
    p += kws::kHopSamples;
  }
  g_sink = produced;
}

extern "C" __attribute__((noinline)) void kws_bench_recognizer(int steps) {
  int news = 0;
  for (int i = 0; i < steps; ++i) {
    const uint8_t* s = g_scores.data() + (i % 256) * kws::kNumClasses;
    news += g_recognizer.Process(s, static_cast<uint32_t>(i) * 40u).is_new_command;
  }
  g_sink = news;
}

int main(int argc, char** argv) {
  const char* what = argc > 1 ? argv[1] : "all";
  const int n = argc > 2 ? std::atoi(argv[2]) : 1000;
  if (!g_frontend.Init(kws::SettingsFrontendTables())) return 1;
  kws::RecognizerConfig rc = kws::SettingsAppConfig().recognizer;
  if (!g_recognizer.Init(rc)) return 1;

  // Speech-like input: noise with a slowly varying level, so logf sees a
  // realistic spread of values. Pre-fill so the first frame needs one hop.
  std::mt19937 rng(42);
  std::normal_distribution<float> g(0.0f, 1.0f);
  g_audio.resize(static_cast<size_t>(n + 4) * kws::kHopSamples);
  for (size_t i = 0; i < g_audio.size(); ++i) {
    const float level = 3000.0f * (1.2f + std::sin(static_cast<float>(i) * 0.0007f));
    g_audio[i] = static_cast<int16_t>(level * g(rng) / 3.0f);
  }
  const std::vector<int16_t> warm(kws::kWindowSamples / 2, 0);
  g_frontend.FeedSamples(warm.data(), static_cast<int>(warm.size()), nullptr);
  g_scores.resize(256 * kws::kNumClasses);
  for (int i = 0; i < 256; ++i) {
    const int top = (i / 40) % 2 ? 0 : kws::kSilenceIndex;
    for (int c = 0; c < kws::kNumClasses; ++c) {
      g_scores[i * kws::kNumClasses + c] = static_cast<uint8_t>(c == top ? 230 : rng() % 20);
    }
  }

  using Clock = std::chrono::steady_clock;
  if (!std::strcmp(what, "mfcc") || !std::strcmp(what, "all")) {
    const auto t0 = Clock::now();
    kws_bench_mfcc(n);
    const double us = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
    std::printf("mfcc_frames=%d host_us_per_frame=%.3f\n", n, us / n);
  }
  if (!std::strcmp(what, "recognizer") || !std::strcmp(what, "all")) {
    const auto t0 = Clock::now();
    kws_bench_recognizer(n);
    const double us = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
    std::printf("recognizer_steps=%d host_us_per_step=%.3f\n", n, us / n);
  }
  std::printf("sizeof MfccFrontend=%zu FeatureWindow=%zu Recognizer=%zu KwsApp=%zu\n",
              sizeof(kws::MfccFrontend), sizeof(kws::FeatureWindow), sizeof(kws::Recognizer),
              sizeof(kws::KwsApp));
  return 0;
}
