// kws_tf micro_app: SparkNet keyword spotting on the Arduino Nano 33 BLE (Sense).
//
// Board glue only. Everything that computes (MFCC front-end, feature window,
// recogniser, benchmark statistics, self-test comparison, state copy plan) is
// the portable core in src/ (host-tested, see micro_app/README.md); this sketch
// implements the core's interfaces (src/app_interfaces.h) with the board's parts:
//   audio source  <- PDM microphone, 16 kHz mono, interrupt -> lock-free ring
//   clock         <- DWT cycle counter, micros() if unavailable (board_clock.h)
//   model runner  <- TensorFlow Lite Micro interpreter (board_runner.h):
//                    by default the per-frame STEP model, one int8 frame in per
//                    10 ms hop with its state copied back after every Invoke;
//                    -DKWS_WINDOWED_MODEL=1: the windowed model, the 1 s window
//                    every 4 frames (40 ms)
//   reporter      <- Serial (+ RGB LED: a colour per keyword, red on errors; board_led.h)
// Build options: board_options.h. Op registration: board_ops.h.
//
// Generated files this sketch needs next to it (python -m kws_tf.export ...):
//   kws_settings.h           labels, front-end tables, quantisation, op list, arenas,
//                            kHasStepModel / kStepDelayFrames / kStepNumStates / kStepArenaBytes
//   model_step_data.h / .cc  the per-frame step model (g_step_model; the default)
//   model_data.h / .cc       the windowed model (g_model; -DKWS_WINDOWED_MODEL=1)
//   selftest_data.h / .cc    optional: audio for the `t` self-test
//
// Serial (115200): lines "KWS <label> score=<0..255> t=<ms>", "BENCH ...",
// "SELFTEST ...", "ERROR ...", "WARN ...", "INFO ...". Commands (one character):
//   b  benchmark lines on (about one a second)   x  off
//   r  one BENCH line now        t  self-test        h  help + banner
// Fatal errors (no recovery) repeat their ERROR line and blink the red LED
// N times every ~2 s:
//   1 schema version  2 op registration  3 AllocateTensors  4 input tensor
//   5 output tensor   6 core init        7 PDM microphone    8 step model state
//   9 arena margin used up (AllocateTensors left < KWS_ARENA_MIN_FREE_BYTES free)
// The LED is blue while setup() runs and dark once the microphone is listening.
//
// Every file the sketch needs compiles with every Arduino builder: the core is
// src/*.cpp and the generated model data is header-only (Arduino IDE 1.8 and
// arduino-builder skip .cc files; model_data.cc etc. are empty placeholders).
#include <Arduino.h>
#include <PDM.h>
#include <TensorFlowLite.h>
#include <string.h>

#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"

// The portable core, then the generated settings (after the core: that enables
// its SettingsFrontendTables()/SettingsAppConfig() glue). kws_settings.h has
// internal-linkage arrays: include it from this file only.
#include "src/app_interfaces.h"
#include "src/audio_ring_buffer.h"
#include "src/kws_app.h"
#include "src/kws_dims.h"
#include "src/mfcc_frontend.h"
#include "kws_settings.h"
#include "board_options.h"
#include "board_ops.h"
#include "board_clock.h"
#include "board_led.h"
#include "board_runner.h"
#include "model_data.h"
#if KWS_HAVE_STEP_DATA
#include "model_step_data.h"
#endif
#if KWS_HAVE_SELFTEST_DATA
#include "selftest_data.h"
#endif

static_assert(kws::kNumOps > 0,
              "kws_settings.h lists no ops: it is the host-test header. Export a model "
              "(python -m kws_tf.export ...) and copy its files into micro_app/");
static_assert(kws_board::kModelArenaBytes > 0,
              "kws_settings.h has no arena size for this model: export a model first");
static_assert(kws::board::AllModelOpsRegistrable(),
              "the model's op list (kws_settings.h kOpNames) has an op board_ops.h cannot "
              "register, or a duplicate: see kws_tf/tflite_tools.py MICRO_OPS");
static_assert((KWS_RING_SAMPLES & (KWS_RING_SAMPLES - 1)) == 0, "KWS_RING_SAMPLES: power of two");
static_assert(KWS_RING_SAMPLES >= 4 * kws::dims::kHopSamples, "KWS_RING_SAMPLES too small");
static_assert(KWS_STEP_STAGING_BYTES >= 0, "KWS_STEP_STAGING_BYTES: bytes, >= 0");

using kws_board::kArenaSize;
using kws_board::kBenchEvery;
using kws_board::kUseStepModel;

enum BlinkCode : int {
  kBlinkSchema = 1,
  kBlinkOps = 2,
  kBlinkAllocate = 3,
  kBlinkInput = 4,
  kBlinkOutput = 5,
  kBlinkCoreInit = 6,
  kBlinkPdm = 7,
  kBlinkStepState = 8,
  kBlinkArenaMargin = 9,
};

// Serial lines; detections light the LED in the keyword's colour, ERROR lines red.
class SerialReporter : public kws::Reporter {
 public:
  void Report(const char* line) override;
};

// ------------------------------------------------------------------- state
namespace {
alignas(16) uint8_t g_arena[kArenaSize];
int16_t g_ring_storage[KWS_RING_SAMPLES];
int8_t g_step_staging[kUseStepModel && KWS_STEP_STAGING_BYTES > 0 ? KWS_STEP_STAGING_BYTES : 1];
kws::AudioRingBuffer g_ring;
kws::RingBufferSource g_source(&g_ring);
kws_board::BoardClock g_clock;
kws_board::TflmWindowRunner g_window_runner;
kws_board::TflmStepRunner g_step_runner;
kws::ModelRunner* const g_runner =
    kUseStepModel ? static_cast<kws::ModelRunner*>(&g_step_runner) : &g_window_runner;
SerialReporter g_reporter;
kws_board::Led g_led;
kws::KwsApp g_app;
bool g_pdm_started = false;
volatile uint32_t g_pdm_callbacks = 0;
bool g_bench_on = KWS_BENCHMARK != 0;
uint32_t g_next_bench_inference = kBenchEvery;
uint32_t g_reported_overruns = 0;
uint32_t g_last_overrun_report_ms = 0;
bool g_overrun_reported = false;
char g_fatal_line[256];
}  // namespace

// ---------------------------------------------------------------- functions

void SerialReporter::Report(const char* line) {
  Serial.println(line);
  if (strncmp(line, "KWS ", 4) == 0) {
    const char* label = line + 4;
    const char* end = strchr(label, ' ');
    const size_t len = end ? static_cast<size_t>(end - label) : strlen(label);
    for (int i = 0; i < kws::kNumClasses; ++i) {
      if (strlen(kws::kLabels[i]) == len && strncmp(kws::kLabels[i], label, len) == 0) {
        g_led.Set(kws_board::kClassColours[i % kws_board::kNumClassColours], KWS_LED_MS);
        break;
      }
    }
  } else if (strncmp(line, "ERROR", 5) == 0) {
    g_led.Set(kws_board::kRed, 200);
  }
}

// Helpers in an anonymous namespace: internal linkage, and the Arduino
// builder's prototype generator leaves them alone (each is defined before use).
namespace {

// PDM interrupt (the library's IRQ handler calls it once per filled half of its
// DMA double buffer). Moves everything available into the ring and returns; if
// the loop falls behind, the ring counts the overwritten samples.
void OnPdmData() {
  static int16_t chunk[256];
  int bytes = PDM.available();
  while (bytes > 0) {
    const int want = bytes < static_cast<int>(sizeof(chunk)) ? bytes : static_cast<int>(sizeof(chunk));
    const int got = PDM.read(chunk, want);
    if (got <= 0) break;
    g_ring.Write(chunk, static_cast<uint32_t>(got) / 2u);
    bytes -= got;
  }
  g_pdm_callbacks = g_pdm_callbacks + 1;
}

// Never returns: repeats the error line (a monitor opened later still sees it)
// and blinks the red LED `code` times every ~2 s.
void Fatal(int code, const char* line) {
  strncpy(g_fatal_line, line, sizeof(g_fatal_line) - 1);
  g_fatal_line[sizeof(g_fatal_line) - 1] = '\0';
  if (g_pdm_started) PDM.end();
  for (;;) {
    Serial.print(g_fatal_line);
    Serial.print(" (blink code ");
    Serial.print(code);
    Serial.println(")");
    for (int i = 0; i < code; ++i) {
      g_led.Set(kws_board::kRed, 1000);
      delay(200);
      g_led.Off();
      delay(250);
    }
    delay(1500);
  }
}

// "INFO kws_tf micro_app model=<name> mode=frame|window delay=<frames> states=<n> ...".
void PrintBanner() {
  char line[320];
  snprintf(line, sizeof(line),
           "INFO kws_tf micro_app model=%s mode=%s delay=%d states=%d classes=%d ops=%d arena=%d "
           "arena_used=%lu frontend=0x%08lx clock=%s bench=%s selftest_clips=%d",
           kws::kModelName, kUseStepModel ? "frame" : "window", kUseStepModel ? kws::kStepDelayFrames : 0,
           kUseStepModel ? g_step_runner.num_states() : 0, kws::kNumClasses, kws::kNumOps, kArenaSize,
           static_cast<unsigned long>(g_runner->arena_used_bytes()),
           static_cast<unsigned long>(kws::kFrontendHash), g_clock.uses_dwt() ? "dwt" : "micros",
           g_bench_on ? "on" : "off",
#if KWS_HAVE_SELFTEST_DATA
           kws::kNumSelftestClips
#else
           0
#endif
  );
  Serial.println(line);
}

void PrintHelp() {
  Serial.println("INFO commands: b bench on, x bench off, r bench now, t self-test, h help");
  PrintBanner();
}

#if KWS_HAVE_SELFTEST_DATA
// Index of `label` in the model's classes, -1 if absent.
int FindLabel(const char* label) {
  for (int i = 0; i < kws::kNumClasses; ++i) {
    if (strcmp(kws::kLabels[i], label) == 0) return i;
  }
  return -1;
}
#endif

// Replays each embedded clip through the whole pipeline (KwsApp::SelfTest:
// front-end, TFLM, recogniser) and compares with the host pipeline's label.
void RunSelfTest() {
#if KWS_HAVE_SELFTEST_DATA
  char line[120];
  int passed = 0;
  int failed = 0;
  snprintf(line, sizeof(line), "SELFTEST BEGIN clips=%d", kws::kNumSelftestClips);
  Serial.println(line);
  for (int c = 0; c < kws::kNumSelftestClips; ++c) {
    const kws::SelftestClip& clip = kws::kSelftestClips[c];
    snprintf(line, sizeof(line), "SELFTEST CLIP %s expected=%s", clip.name, clip.expected_label);
    Serial.println(line);
    int32_t expected[1];
    int num_expected = 0;
    if (clip.expected_label[0] != '\0') {
      const int index = FindLabel(clip.expected_label);
      if (index < 0) {
        snprintf(line, sizeof(line), "SELFTEST FAIL expected=%s detected= (label not in this model)",
                 clip.expected_label);
        Serial.println(line);
        ++failed;
        continue;
      }
      if (index != kws::kSilenceIndex && index != kws::kUnknownIndex) expected[num_expected++] = index;
    }
    if (g_app.SelfTest(clip.audio, clip.num_samples, expected, num_expected)) {
      ++passed;
    } else {
      ++failed;
    }
  }
  snprintf(line, sizeof(line), "SELFTEST END pass=%d fail=%d", passed, failed);
  Serial.println(line);
  // The microphone kept running: drop what queued up meanwhile (not an overrun).
  g_ring.Reset();
  g_app.Reset();
  g_reported_overruns = 0;
  g_next_bench_inference = kBenchEvery;
  Serial.println("INFO self-test done; audio restarted (t= counts from 0 again)");
#else
  Serial.println("ERROR selftest: no selftest_data.h in the sketch (export with self-test clips)");
#endif
}

void HandleCommands() {
  while (Serial.available() > 0) {
    const int c = Serial.read();
    switch (c) {
      case 'b':
        g_bench_on = true;
        g_next_bench_inference = g_app.inferences() + kBenchEvery;
        Serial.print("INFO bench on every=");
        Serial.println(static_cast<int>(kBenchEvery));
        break;
      case 'x':
        g_bench_on = false;
        Serial.println("INFO bench off");
        break;
      case 'r':
        g_app.ReportBench();
        break;
      case 't':
        RunSelfTest();
        break;
      case 'h':
      case '?':
        PrintHelp();
        break;
      default:
        break;  // newlines and anything else
    }
  }
}

void BenchTick() {
  if (!g_bench_on) return;
  const uint32_t n = g_app.inferences();
  if (n + kBenchEvery < g_next_bench_inference) g_next_bench_inference = n + kBenchEvery;
  if (n >= g_next_bench_inference) {
    g_app.ReportBench();
    g_next_bench_inference = n + kBenchEvery;
  }
}

// Overruns are always reported (at most once a second), bench mode or not.
void OverrunTick() {
  const uint32_t overruns = g_ring.overrun_events();
  if (overruns == g_reported_overruns) return;
  const uint32_t now = millis();
  if (g_overrun_reported && now - g_last_overrun_report_ms < 1000) return;
  g_overrun_reported = true;
  g_last_overrun_report_ms = now;
  g_reported_overruns = overruns;
  char line[96];
  snprintf(line, sizeof(line), "WARN audio overrun events=%lu dropped=%lu (loop slower than the microphone)",
           static_cast<unsigned long>(overruns), static_cast<unsigned long>(g_ring.dropped_samples()));
  Serial.println(line);
}

// The selected model in flash.
const unsigned char* ModelData() {
#if KWS_HAVE_STEP_DATA
  if (kUseStepModel) return g_step_model;
#endif
  return g_model;
}

}  // namespace

void setup() {
  // Boot: ONE wait for a serial monitor, at most KWS_SERIAL_WAIT_MS (board_options.h).
  // tflite::InitializeTarget() is deliberately not called: in the TFLM Arduino library
  // it only calls Serial.begin() and waits up to 4 s more for a monitor (with this
  // sketch's own wait, ~7 s before a board without a monitor listened). TFLM's messages
  // (MicroPrintf -> DebugLog -> Serial) need nothing but Serial.begin().
  g_led.Begin();
  g_led.Set(kws_board::kSetupColour, 0);  // until the microphone is listening
  Serial.begin(KWS_SERIAL_BAUD);
  const uint32_t t0 = millis();
  while (!Serial && millis() - t0 < kws_board::kSerialWaitMs) {
    delay(10);
  }
  g_clock.Begin();

  char line[256];
  const tflite::Model* model = tflite::GetModel(ModelData());
  if (model->version() != TFLITE_SCHEMA_VERSION) {
    snprintf(line, sizeof(line), "ERROR model schema version %lu, this TFLM library supports %d",
             static_cast<unsigned long>(model->version()), static_cast<int>(TFLITE_SCHEMA_VERSION));
    Fatal(kBlinkSchema, line);
  }

  // kOpNames covers both exported models: one resolver for either.
  static tflite::MicroMutableOpResolver<kws::kNumOps> resolver;
  const char* failed_op = kws::board::RegisterModelOps(&resolver);
  if (failed_op != nullptr) {
    snprintf(line, sizeof(line), "ERROR could not register op %s", failed_op);
    Fatal(kBlinkOps, line);
  }

  // Said BEFORE AllocateTensors: an arena only slightly too small can crash the library
  // there instead of failing (then this is the last line, and the LED stays blue).
  snprintf(line, sizeof(line),
           "INFO arena %d bytes = %s model %d (measured on the exporting host; the board's need is an "
           "estimate) + KWS_ARENA_EXTRA_BYTES %d; AllocateTensors...",
           kArenaSize, kUseStepModel ? "step" : "windowed", kws_board::kModelArenaBytes, KWS_ARENA_EXTRA_BYTES);
  Serial.println(line);
  static tflite::MicroInterpreter interpreter(model, resolver, g_arena, kArenaSize);
  if (interpreter.AllocateTensors() != kTfLiteOk) {
    snprintf(line, sizeof(line),
             "ERROR AllocateTensors failed: %s model, arena %d bytes (exported %d + %d), "
             "arena_used_bytes=%lu; raise KWS_ARENA_EXTRA_BYTES or re-export",
             kUseStepModel ? "step" : "windowed", kArenaSize, kws_board::kModelArenaBytes,
             KWS_ARENA_EXTRA_BYTES, static_cast<unsigned long>(interpreter.arena_used_bytes()));
    Fatal(kBlinkAllocate, line);
  }
  // It fitted, but with less than the stated margin left: this board's library needs
  // more than the export estimated, and a slightly larger need would crash, not fail.
  const long arena_used = static_cast<long>(interpreter.arena_used_bytes());
  if (kArenaSize - arena_used < kws_board::kArenaMinFree) {
    snprintf(line, sizeof(line),
             "ERROR arena margin: %s model used %ld of %d bytes, %ld free < KWS_ARENA_MIN_FREE_BYTES %d "
             "(the library can crash on an arena slightly too small); build with -DKWS_ARENA_EXTRA_BYTES=%ld",
             kUseStepModel ? "step" : "windowed", arena_used, kArenaSize, kArenaSize - arena_used,
             kws_board::kArenaMinFree, kws_board::SuggestedArenaExtra(arena_used));
    Fatal(kBlinkArenaMargin, line);
  }
  // Input / output tensors against kws_settings.h (blink 4 / 5), then the step
  // model's state pairs (blink 8).
  if (!kws_board::CheckInputTensor(interpreter.input(0), kUseStepModel ? 1 : kws::kNumFrames, line,
                                   sizeof(line))) {
    Fatal(kBlinkInput, line);
  }
  if (!kws_board::CheckOutputTensor(interpreter.output(0), line, sizeof(line))) Fatal(kBlinkOutput, line);
  if (kUseStepModel) {
    if (!g_step_runner.Attach(&interpreter, g_step_staging, sizeof(g_step_staging), line, sizeof(line))) {
      Fatal(kBlinkStepState, line);
    }
  } else {
    g_window_runner.Attach(&interpreter);
  }

  kws::AppConfig config = kws::SettingsAppConfig();
  config.bench_window = KWS_BENCH_WINDOW;
  config.bench_report_every = 0;  // BenchTick() decides, so `b`/`x` work at run time
  if (kUseStepModel) {
    config.model_input = kws::ModelInput::kFrame;  // every hop, never deferred
    config.step_delay_frames = kws::kStepDelayFrames;
  } else if (KWS_INFERENCE_EVERY_FRAMES > 0) {
    config.inference_every_frames = KWS_INFERENCE_EVERY_FRAMES;
  }
  if (!g_ring.Init(g_ring_storage, KWS_RING_SAMPLES) ||
      !g_app.Init(kws::SettingsFrontendTables(), config, &g_source, &g_clock, g_runner, &g_reporter)) {
    Fatal(kBlinkCoreInit, "ERROR core init failed (front-end tables or app config rejected)");
  }

  PDM.onReceive(OnPdmData);
  if (!PDM.begin(1, kws::kSampleRate)) {
    snprintf(line, sizeof(line), "ERROR PDM microphone did not start (1 channel, %d Hz)", kws::kSampleRate);
    Fatal(kBlinkPdm, line);
  }
  g_pdm_started = true;
  PDM.setGain(KWS_PDM_GAIN);
  g_ring.Reset();
  g_app.Reset();
  g_led.Off();  // listening
  PrintBanner();
}

void loop() {
  HandleCommands();
  g_app.Step();
  BenchTick();
  OverrunTick();
  g_led.Tick();
}
