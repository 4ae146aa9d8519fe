// Build options of the sketch (all overridable with -D, e.g.
//   arduino-cli compile --build-property "compiler.cpp.extra_flags=-DKWS_WINDOWED_MODEL=1" ...)
// and the choice of model that follows from them and from kws_settings.h.
//
// Include AFTER kws_settings.h.
#ifndef KWS_BOARD_OPTIONS_H_
#define KWS_BOARD_OPTIONS_H_

#include <stdint.h>

// ------------------------------------------------------------- which model
// 0 (default): the per-frame step model (model_step_data.h, g_step_model), one
//    int8 frame in per 10 ms hop, when kws_settings.h says kHasStepModel;
//    with a header that has no step model, the windowed model.
// 1: the windowed model (model_data.h, g_model): the 1 s window every
//    KWS_INFERENCE_EVERY_FRAMES frames, for comparison.
#ifndef KWS_WINDOWED_MODEL
#define KWS_WINDOWED_MODEL 0
#endif

#if defined(__has_include)
#if __has_include("model_step_data.h")
#define KWS_HAVE_STEP_DATA 1
#endif
#if __has_include("selftest_data.h")
#define KWS_HAVE_SELFTEST_DATA 1
#endif
#endif
#ifndef KWS_HAVE_STEP_DATA
#define KWS_HAVE_STEP_DATA 0
#endif
#ifndef KWS_HAVE_SELFTEST_DATA
#define KWS_HAVE_SELFTEST_DATA 0
#endif

// ------------------------------------------------------------------ others
#ifndef KWS_SERIAL_BAUD
#define KWS_SERIAL_BAUD 115200
#endif
#ifndef KWS_BENCHMARK  // 1: BENCH lines from boot (same as sending `b`)
#define KWS_BENCHMARK 0
#endif
#ifndef KWS_BENCH_EVERY  // model runs between BENCH lines; 0: one second's worth
#define KWS_BENCH_EVERY 0
#endif
#ifndef KWS_BENCH_WINDOW  // K for min/median/max (core caps it at 64)
#define KWS_BENCH_WINDOW 32
#endif
#ifndef KWS_INFERENCE_EVERY_FRAMES  // windowed model only; 0: the core's default (4 = 40 ms)
#define KWS_INFERENCE_EVERY_FRAMES 0
#endif
// Arena = the exporter's figure (kStepArenaBytes / kArenaBytes: MEASURED on the exporting
// 64-bit host; the board's 32-bit library is ESTIMATED to need no more) + this margin,
// for what the estimate may miss (CMSIS-NN scratch buffers: up to ~2.4 KB for these models).
#ifndef KWS_ARENA_EXTRA_BYTES
#define KWS_ARENA_EXTRA_BYTES 4096
#endif
// setup() stops with ERROR + blink code 9 when AllocateTensors leaves fewer bytes of the
// arena free: the Feb-2023 library can crash (not fail) on an arena only slightly too
// small, so a build whose margin is used up must not pass silently. 0: no check.
#ifndef KWS_ARENA_MIN_FREE_BYTES
#define KWS_ARENA_MIN_FREE_BYTES 1024
#endif
// setup() waits at most this long for a serial monitor (the only wait at boot; the
// banner is printed again on `h`, fatal errors repeat). 0: no wait.
#ifndef KWS_SERIAL_WAIT_MS
#define KWS_SERIAL_WAIT_MS 1500
#endif
#ifndef KWS_STEP_STAGING_BYTES  // step model: staging for state copies whose buffers overlap
#define KWS_STEP_STAGING_BYTES 1024  // in a cycle (kws::StateCopyPlan); setup says if more is needed
#endif
#ifndef KWS_RING_SAMPLES  // power of two; 8192 = 512 ms of audio, 16 KB
#define KWS_RING_SAMPLES 8192
#endif
#ifndef KWS_PDM_GAIN  // nRF52840 PDM gain (the library's default on this board is 20)
#define KWS_PDM_GAIN 20
#endif
#ifndef KWS_USE_DWT
#define KWS_USE_DWT 1
#endif
#ifndef KWS_LED_MS  // how long the keyword colour stays on
#define KWS_LED_MS 600
#endif

namespace kws_board {

// The step model runs when it was asked for, exported and copied here.
constexpr bool kUseStepModel = !KWS_WINDOWED_MODEL && kws::kHasStepModel;
static_assert(!kUseStepModel || KWS_HAVE_STEP_DATA,
              "kws_settings.h has a step model but model_step_data.h is missing: copy "
              "model_step_data.h/.cc from the export folder into micro_app/, or build the windowed "
              "model with -DKWS_WINDOWED_MODEL=1");

constexpr int kModelArenaBytes = kUseStepModel ? kws::kStepArenaBytes : kws::kArenaBytes;
static_assert(KWS_ARENA_EXTRA_BYTES >= 0 && KWS_ARENA_MIN_FREE_BYTES >= 0, "arena options: bytes, >= 0");
static_assert(KWS_SERIAL_WAIT_MS >= 0, "KWS_SERIAL_WAIT_MS: milliseconds, >= 0");
constexpr int kArenaSize = ((kModelArenaBytes + KWS_ARENA_EXTRA_BYTES + 15) / 16) * 16;
constexpr uint32_t kSerialWaitMs = KWS_SERIAL_WAIT_MS;
// The arena is too tight when AllocateTensors leaves less than this free.
constexpr int kArenaMinFree = KWS_ARENA_MIN_FREE_BYTES;
// KWS_ARENA_EXTRA_BYTES that would leave kArenaMinFree + 1 KiB free after `used` bytes.
constexpr long SuggestedArenaExtra(long used) {
  return used + kArenaMinFree + 1024 - kModelArenaBytes > KWS_ARENA_EXTRA_BYTES
             ? ((used + kArenaMinFree + 1024 - kModelArenaBytes + 255) / 256) * 256
             : KWS_ARENA_EXTRA_BYTES + 1024;
}
// One second of model runs: 100 hops (step) or 100 / inference period (window).
constexpr uint32_t kBenchEvery = static_cast<uint32_t>(
    KWS_BENCH_EVERY > 0 ? KWS_BENCH_EVERY
    : kUseStepModel     ? 100
                        : 100 / (KWS_INFERENCE_EVERY_FRAMES > 0 ? KWS_INFERENCE_EVERY_FRAMES : 4));
static_assert(kBenchEvery > 0, "KWS_BENCH_EVERY / KWS_INFERENCE_EVERY_FRAMES out of range");

}  // namespace kws_board

#endif  // KWS_BOARD_OPTIONS_H_
