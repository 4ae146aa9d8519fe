// kws_tf micro_app: SparkNet keyword spotting on the Arduino Nano 33 BLE (Sense).
//
// Board glue only. Everything that computes (MFCC front-end, feature window,
// recogniser, benchmark statistics, self-test comparison) is the portable core
// in src/ (host-tested, see micro_app/README.md); this file implements the
// core's interfaces (app_interfaces.h) with the board's parts:
//   audio source  <- PDM microphone, 16 kHz mono, interrupt -> lock-free ring
//   clock         <- DWT cycle counter (micros() if unavailable)
//   model runner  <- TensorFlow Lite Micro interpreter Invoke()
//   reporter      <- Serial (+ RGB LED: a colour per keyword, red on errors)
//
// Generated files this sketch needs next to it (python -m kws_tf.export ...):
//   kws_settings.h          labels, front-end tables, quantisation, op list, arena
//   model_data.h / .cc      the int8 flatbuffer (g_model)
//   selftest_data.h / .cc   optional: audio for the `t` self-test
//
// Serial (115200): lines "KWS <label> score=<0..255> t=<ms>", "BENCH ...",
// "SELFTEST ...", "ERROR ...", "WARN ...", "INFO ...". Commands (one character):
//   b  benchmark lines on (every KWS_BENCH_EVERY inferences)   x  off
//   r  one BENCH line now        t  self-test        h  help + banner
// Fatal errors (no recovery) repeat their ERROR line and blink the red LED
// N times every ~2 s:
//   1 schema version  2 op registration  3 AllocateTensors  4 input tensor
//   5 output tensor   6 core init        7 PDM microphone
#include <Arduino.h>
#include <PDM.h>
#include <TensorFlowLite.h>
#include <string.h>

#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/micro/system_setup.h"
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
#include "model_data.h"
#include "board_ops.h"

#if defined(__has_include)
#if __has_include("selftest_data.h")
#include "selftest_data.h"
#define KWS_HAVE_SELFTEST_DATA 1
#endif
#endif
#ifndef KWS_HAVE_SELFTEST_DATA
#define KWS_HAVE_SELFTEST_DATA 0
#endif

// ----------------------------------------------------------------- options
#ifndef KWS_SERIAL_BAUD
#define KWS_SERIAL_BAUD 115200
#endif
#ifndef KWS_BENCHMARK  // 1: BENCH lines from boot (same as sending `b`)
#define KWS_BENCHMARK 0
#endif
#ifndef KWS_BENCH_EVERY  // inferences between BENCH lines (25 x 40 ms = 1 s)
#define KWS_BENCH_EVERY 25
#endif
#ifndef KWS_BENCH_WINDOW  // K for min/median/max (core caps it at 64)
#define KWS_BENCH_WINDOW 32
#endif
#ifndef KWS_ARENA_EXTRA_BYTES  // on top of the exporter's kArenaBytes
#define KWS_ARENA_EXTRA_BYTES 2048
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

static_assert(kws::kNumOps > 0,
              "kws_settings.h lists no ops: it is the host-test header. Export a model "
              "(python -m kws_tf.export ...) and copy its files into micro_app/");
static_assert(kws::kArenaBytes > 0, "kws_settings.h has no arena size: export a model first");
static_assert(kws::board::AllModelOpsRegistrable(),
              "the model's op list (kws_settings.h kOpNames) has an op board_ops.h cannot "
              "register, or a duplicate: see kws_tf/tflite_tools.py MICRO_OPS");
static_assert((KWS_RING_SAMPLES & (KWS_RING_SAMPLES - 1)) == 0, "KWS_RING_SAMPLES: power of two");
static_assert(KWS_RING_SAMPLES >= 4 * kws::dims::kHopSamples, "KWS_RING_SAMPLES too small");

constexpr int kArenaSize = ((kws::kArenaBytes + KWS_ARENA_EXTRA_BYTES + 15) / 16) * 16;

enum BlinkCode : int {
  kBlinkSchema = 1,
  kBlinkOps = 2,
  kBlinkAllocate = 3,
  kBlinkInput = 4,
  kBlinkOutput = 5,
  kBlinkCoreInit = 6,
  kBlinkPdm = 7,
};

struct Rgb {
  uint8_t r, g, b;
};

// Colour per class index (labels.py order: yes no up down left right on off stop go).
const Rgb kClassColours[] = {
    {0, 255, 0},    // yes    green
    {255, 0, 0},    // no     red
    {0, 0, 255},    // up     blue
    {255, 160, 0},  // down   yellow
    {0, 255, 255},  // left   cyan
    {255, 0, 255},  // right  magenta
    {255, 255, 255},// on     white
    {255, 40, 0},   // off    orange
    {120, 0, 255},  // stop   violet
    {120, 255, 0},  // go     lime
};
constexpr int kNumClassColours = sizeof(kClassColours) / sizeof(kClassColours[0]);

// ---------------------------------------------------------- core interfaces

// Microseconds from the Cortex-M4 cycle counter: cycle-exact and cheap; the
// 64-bit accumulation keeps differences right across the 67 s CYCCNT wrap
// (as long as it is read at least once per wrap, which the loop does).
class BoardClock : public kws::Clock {
 public:
  void Begin() {
#if KWS_USE_DWT && defined(DWT) && defined(CoreDebug)
    CoreDebug->DEMCR |= CoreDebug_DEMCR_TRCENA_Msk;
    DWT->CYCCNT = 0;
    DWT->CTRL |= DWT_CTRL_CYCCNTENA_Msk;
    const uint32_t c0 = DWT->CYCCNT;
    delayMicroseconds(10);
    cycles_per_us_ = SystemCoreClock / 1000000u;
    use_dwt_ = DWT->CYCCNT != c0 && cycles_per_us_ > 0;
    last_ = DWT->CYCCNT;
#endif
  }
  uint32_t NowMicros() override {
#if KWS_USE_DWT && defined(DWT) && defined(CoreDebug)
    if (use_dwt_) {
      const uint32_t c = DWT->CYCCNT;
      cycles_ += static_cast<uint32_t>(c - last_);
      last_ = c;
      return static_cast<uint32_t>(cycles_ / cycles_per_us_);
    }
#endif
    return micros();
  }
  bool uses_dwt() const { return use_dwt_; }

 private:
  bool use_dwt_ = false;
  uint32_t cycles_per_us_ = 0;
  uint32_t last_ = 0;
  uint64_t cycles_ = 0;
};

class TflmRunner : public kws::ModelRunner {
 public:
  void Attach(tflite::MicroInterpreter* interpreter) {
    interpreter_ = interpreter;
    input_ = interpreter->input(0);
    output_ = interpreter->output(0);
    arena_used_ = static_cast<uint32_t>(interpreter->arena_used_bytes());
  }
  bool Run(const int8_t* input, int8_t* output) override {
    memcpy(input_->data.int8, input, kws::dims::kFeatureBytes);
    if (interpreter_->Invoke() != kTfLiteOk) return false;
    memcpy(output, output_->data.int8, kws::kNumClasses);
    return true;
  }
  uint32_t arena_used_bytes() const override { return arena_used_; }

 private:
  tflite::MicroInterpreter* interpreter_ = nullptr;
  TfLiteTensor* input_ = nullptr;
  TfLiteTensor* output_ = nullptr;
  uint32_t arena_used_ = 0;
};

// Serial lines; detections light the LED in the keyword's colour, ERROR lines red.
class SerialReporter : public kws::Reporter {
 public:
  void Report(const char* line) override;
};

// RGB LED of the Nano 33 BLE: active low, PWM through analogWrite.
class Led {
 public:
  void Begin() {
    pinMode(LEDR, OUTPUT);
    pinMode(LEDG, OUTPUT);
    pinMode(LEDB, OUTPUT);
    Off();
  }
  void Set(const Rgb& c, uint32_t duration_ms) {
    analogWrite(LEDR, 255 - c.r);
    analogWrite(LEDG, 255 - c.g);
    analogWrite(LEDB, 255 - c.b);
    on_ = true;
    off_at_ = millis() + duration_ms;
  }
  void Off() {
    digitalWrite(LEDR, HIGH);
    digitalWrite(LEDG, HIGH);
    digitalWrite(LEDB, HIGH);
    on_ = false;
  }
  void Tick() {
    if (on_ && static_cast<int32_t>(millis() - off_at_) >= 0) Off();
  }

 private:
  bool on_ = false;
  uint32_t off_at_ = 0;
};

// ------------------------------------------------------------------- state
namespace {
alignas(16) uint8_t g_arena[kArenaSize];
int16_t g_ring_storage[KWS_RING_SAMPLES];
kws::AudioRingBuffer g_ring;
kws::RingBufferSource g_source(&g_ring);
BoardClock g_clock;
TflmRunner g_runner;
SerialReporter g_reporter;
Led g_led;
kws::KwsApp g_app;
bool g_pdm_started = false;
volatile uint32_t g_pdm_callbacks = 0;
bool g_bench_on = KWS_BENCHMARK != 0;
uint32_t g_next_bench_inference = KWS_BENCH_EVERY;
uint32_t g_reported_overruns = 0;
uint32_t g_last_overrun_report_ms = 0;
bool g_overrun_reported = false;
char g_fatal_line[200];
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
        g_led.Set(kClassColours[i % kNumClassColours], KWS_LED_MS);
        break;
      }
    }
  } else if (strncmp(line, "ERROR", 5) == 0) {
    g_led.Set(Rgb{255, 0, 0}, 200);
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
      g_led.Set(Rgb{255, 0, 0}, 1000);
      delay(200);
      g_led.Off();
      delay(250);
    }
    delay(1500);
  }
}

long ToNano(float x) { return static_cast<long>(x * 1e9f + (x >= 0 ? 0.5f : -0.5f)); }

bool ScaleMatches(float a, float b) {
  const float diff = a > b ? a - b : b - a;
  return diff <= 1e-6f * (b > 0 ? b : -b);
}

// (1, ..., 1, kNumFrames, kNumMfcc) int8, quantised as the front-end quantises.
void CheckInputTensor(const TfLiteTensor* t) {
  char line[200];
  const TfLiteIntArray* d = t->dims;
  bool shape_ok = d != nullptr && d->size >= 2 && d->data[d->size - 1] == kws::kNumMfcc &&
                  d->data[d->size - 2] == kws::kNumFrames;
  for (int i = 0; shape_ok && i < d->size - 2; ++i) shape_ok = d->data[i] == 1;
  if (t->type != kTfLiteInt8 || !shape_ok || t->bytes != static_cast<size_t>(kws::dims::kFeatureBytes)) {
    snprintf(line, sizeof(line),
             "ERROR input tensor: type %d, %d dims, last two %d x %d, %lu bytes; the features "
             "need int8 (1, %d, %d) = %d bytes",
             static_cast<int>(t->type), d ? d->size : -1, d && d->size >= 2 ? d->data[d->size - 2] : -1,
             d && d->size >= 1 ? d->data[d->size - 1] : -1, static_cast<unsigned long>(t->bytes),
             kws::kNumFrames, kws::kNumMfcc, kws::dims::kFeatureBytes);
    Fatal(kBlinkInput, line);
  }
  if (!ScaleMatches(t->params.scale, kws::kInputScale) ||
      t->params.zero_point != kws::kInputZeroPoint) {
    snprintf(line, sizeof(line),
             "ERROR input quantisation: model scale %ld e-9 zp %ld, kws_settings.h scale %ld e-9 zp %ld "
             "(model and header from different exports?)",
             ToNano(t->params.scale), static_cast<long>(t->params.zero_point), ToNano(kws::kInputScale),
             static_cast<long>(kws::kInputZeroPoint));
    Fatal(kBlinkInput, line);
  }
}

void CheckOutputTensor(const TfLiteTensor* t) {
  char line[200];
  if (t->type != kTfLiteInt8 || t->bytes != static_cast<size_t>(kws::kNumClasses)) {
    snprintf(line, sizeof(line), "ERROR output tensor: type %d, %lu bytes; expected int8 x %d classes",
             static_cast<int>(t->type), static_cast<unsigned long>(t->bytes), kws::kNumClasses);
    Fatal(kBlinkOutput, line);
  }
  if (kws::kHasOutputQuantization &&
      (!ScaleMatches(t->params.scale, kws::kOutputScale) || t->params.zero_point != kws::kOutputZeroPoint)) {
    snprintf(line, sizeof(line),
             "ERROR output quantisation: model scale %ld e-9 zp %ld, kws_settings.h scale %ld e-9 zp %ld",
             ToNano(t->params.scale), static_cast<long>(t->params.zero_point), ToNano(kws::kOutputScale),
             static_cast<long>(kws::kOutputZeroPoint));
    Fatal(kBlinkOutput, line);
  }
}

void PrintBanner() {
  char line[200];
  snprintf(line, sizeof(line),
           "INFO kws_tf micro_app model=%s classes=%d ops=%d arena=%d arena_used=%lu frontend=0x%08lx "
           "clock=%s bench=%s selftest_clips=%d",
           kws::kModelName, kws::kNumClasses, kws::kNumOps, kArenaSize,
           static_cast<unsigned long>(g_runner.arena_used_bytes()),
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

// Index of `label` in the model's classes, -1 if absent.
int FindLabel(const char* label) {
  for (int i = 0; i < kws::kNumClasses; ++i) {
    if (strcmp(kws::kLabels[i], label) == 0) return i;
  }
  return -1;
}

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
  g_next_bench_inference = KWS_BENCH_EVERY;
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
        g_next_bench_inference = g_app.inferences() + KWS_BENCH_EVERY;
        Serial.print("INFO bench on every=");
        Serial.println(KWS_BENCH_EVERY);
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
  if (n + KWS_BENCH_EVERY < g_next_bench_inference) g_next_bench_inference = n + KWS_BENCH_EVERY;
  if (n >= g_next_bench_inference) {
    g_app.ReportBench();
    g_next_bench_inference = n + KWS_BENCH_EVERY;
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

}  // namespace

void setup() {
  tflite::InitializeTarget();
  Serial.begin(KWS_SERIAL_BAUD);
  const uint32_t t0 = millis();
  while (!Serial && millis() - t0 < 3000) {
  }
  g_led.Begin();
  g_clock.Begin();

  char line[200];
  const tflite::Model* model = tflite::GetModel(g_model);
  if (model->version() != TFLITE_SCHEMA_VERSION) {
    snprintf(line, sizeof(line), "ERROR model schema version %lu, this TFLM library supports %d",
             static_cast<unsigned long>(model->version()), static_cast<int>(TFLITE_SCHEMA_VERSION));
    Fatal(kBlinkSchema, line);
  }

  static tflite::MicroMutableOpResolver<kws::kNumOps> resolver;
  const char* failed_op = kws::board::RegisterModelOps(&resolver);
  if (failed_op != nullptr) {
    snprintf(line, sizeof(line), "ERROR could not register op %s", failed_op);
    Fatal(kBlinkOps, line);
  }

  static tflite::MicroInterpreter interpreter(model, resolver, g_arena, kArenaSize);
  if (interpreter.AllocateTensors() != kTfLiteOk) {
    snprintf(line, sizeof(line),
             "ERROR AllocateTensors failed: arena %d bytes (exported %d + %d), arena_used_bytes=%lu; "
             "raise KWS_ARENA_EXTRA_BYTES or re-export",
             kArenaSize, kws::kArenaBytes, KWS_ARENA_EXTRA_BYTES,
             static_cast<unsigned long>(interpreter.arena_used_bytes()));
    Fatal(kBlinkAllocate, line);
  }
  CheckInputTensor(interpreter.input(0));
  CheckOutputTensor(interpreter.output(0));
  g_runner.Attach(&interpreter);

  kws::AppConfig config = kws::SettingsAppConfig();
  config.bench_window = KWS_BENCH_WINDOW;
  config.bench_report_every = 0;  // BenchTick() decides, so `b`/`x` work at run time
  if (!g_ring.Init(g_ring_storage, KWS_RING_SAMPLES) ||
      !g_app.Init(kws::SettingsFrontendTables(), config, &g_source, &g_clock, &g_runner, &g_reporter)) {
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
  PrintBanner();
}

void loop() {
  HandleCommands();
  g_app.Step();
  BenchTick();
  OverrunTick();
  g_led.Tick();
}
