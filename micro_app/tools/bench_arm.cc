// Cortex-M4 build of the core's two hot paths, run under qemu-arm by
// benchmarks/micro_core_cost.py, which counts executed instructions for
// KWS_BENCH_ITEMS = N and 2N and takes the difference (one-off costs cancel).
//   KWS_BENCH_WHAT 0: MFCC frames (one hop each, as on the board)
//   KWS_BENCH_WHAT 1: recogniser steps
#include <stdio.h>

#include "kws_app.h"
#include "kws_settings.h"

#ifndef KWS_BENCH_ITEMS
#define KWS_BENCH_ITEMS 4
#endif
#ifndef KWS_BENCH_WHAT
#define KWS_BENCH_WHAT 0
#endif

static kws::MfccFrontend g_frontend;
static kws::Recognizer g_recognizer;
// Fixed size, independent of the item count, so that generating it cancels
// out of the N / 2N difference.
constexpr int kAudioHops = 64;
static int16_t g_audio[kAudioHops * kws::kHopSamples];

int main() {
  if (!g_frontend.Init(kws::SettingsFrontendTables())) return 1;
  if (!g_recognizer.Init(kws::SettingsAppConfig().recognizer)) return 1;
  // Noise with a varying level (xorshift: no libc random state needed).
  uint32_t x = 2463534242u;
  for (int i = 0; i < static_cast<int>(sizeof(g_audio) / sizeof(g_audio[0])); ++i) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    const int level = 200 + (i / 97) % 3000;
    g_audio[i] = static_cast<int16_t>(static_cast<int32_t>(x % (2 * level + 1)) - level);
  }
  int sink = 0;
#if KWS_BENCH_WHAT == 0
  static const int16_t kZeros[kws::kWindowSamples / 2] = {0};
  g_frontend.FeedSamples(kZeros, kws::kWindowSamples / 2, nullptr);
  for (int i = 0; i < KWS_BENCH_ITEMS; ++i) {
    sink += g_frontend.FeedSamples(g_audio + (i % kAudioHops) * kws::kHopSamples, kws::kHopSamples,
                                   nullptr);
  }
#else
  uint8_t scores[kws::kNumClasses];
  for (int i = 0; i < KWS_BENCH_ITEMS; ++i) {
    const int top = (i / 40) % 2 ? 0 : kws::kSilenceIndex;
    for (int c = 0; c < kws::kNumClasses; ++c) scores[c] = c == top ? 230 : (i * 7 + c) % 20;
    sink += g_recognizer.Process(scores, static_cast<uint32_t>(i) * 40u).is_new_command;
  }
#endif
  printf("items=%d sink=%d features0=%d\n", KWS_BENCH_ITEMS, sink, g_frontend.features()[0]);
  return 0;
}
