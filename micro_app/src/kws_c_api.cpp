// Host-only: the C API lets Python (ctypes) drive the same core the board runs.
// The Arduino builder compiles every file under src/, so keep this one out of
// board builds (it uses std::string/std::vector and the heap).
#ifndef ARDUINO

#include "kws_c_api.h"

#include <chrono>
#include <new>
#include <string>
#include <vector>

#include "kws_app.h"
#include "kws_dims.h"
#include "mfcc_frontend.h"
#include "output_scores.h"
#include "recognizer.h"

namespace {

// Owns copies of the caller's arrays, so Python may free its numpy buffers.
struct OwnedTables {
  std::vector<float> window, mel_weights, dct, mean, inv_std;
  std::vector<uint16_t> mel_start, mel_length, mel_offset;
  kws::FrontendTables tables = {};

  bool Load(const kws_frontend_params* p) {
    if (!p || !p->window || !p->mel_start || !p->mel_length || !p->mel_offset ||
        !p->mel_weights || !p->dct || !p->norm_mean || !p->norm_inv_std ||
        p->window_samples != kws::dims::kWindowSamples || p->num_mel != kws::dims::kNumMel ||
        p->num_mfcc != kws::dims::kNumMfcc || p->mel_weight_count < 0 ||
        !(p->input_scale > 0.0f)) {
      return false;
    }
    window.assign(p->window, p->window + p->window_samples);
    mel_start.assign(p->mel_start, p->mel_start + p->num_mel);
    mel_length.assign(p->mel_length, p->mel_length + p->num_mel);
    mel_offset.assign(p->mel_offset, p->mel_offset + p->num_mel);
    mel_weights.assign(p->mel_weights, p->mel_weights + p->mel_weight_count);
    dct.assign(p->dct, p->dct + p->num_mel * p->num_mfcc);
    mean.assign(p->norm_mean, p->norm_mean + p->num_mfcc);
    inv_std.assign(p->norm_inv_std, p->norm_inv_std + p->num_mfcc);
    kws::FrontendTables& t = tables;
    t.sample_rate = p->sample_rate;
    t.window_samples = p->window_samples;
    t.hop_samples = p->hop_samples;
    t.fft_size = p->fft_size;
    t.num_mel = p->num_mel;
    t.num_mfcc = p->num_mfcc;
    t.window = window.data();
    t.mel_start = mel_start.data();
    t.mel_length = mel_length.data();
    t.mel_offset = mel_offset.data();
    t.mel_weights = mel_weights.data();
    t.mel_weight_count = p->mel_weight_count;
    t.dct = dct.data();
    t.norm_mean = mean.data();
    t.norm_inv_std = inv_std.data();
    t.log_offset = p->log_offset;
    t.pcm_scale = p->pcm_scale;
    t.input_inv_scale = 1.0f / p->input_scale;  // as features.quantize_np
    t.input_zero_point = p->input_zero_point;
    return true;
  }
};

kws::RecognizerConfig ToRecognizerConfig(const kws_recognizer_config& c) {
  kws::RecognizerConfig r;
  r.average_window_ms = c.average_window_ms;
  r.detection_threshold = c.detection_threshold;
  r.suppression_ms = c.suppression_ms;
  r.minimum_count = c.minimum_count;
  r.num_classes = c.num_classes;
  r.silence_index = c.silence_index;
  r.unknown_index = c.unknown_index;
  return r;
}

void FromRecognition(const kws::Recognition& r, kws_recognition* out) {
  out->found = r.found ? 1 : 0;
  out->label = r.label;
  out->score = r.score;
  out->is_new_command = r.is_new_command ? 1 : 0;
}

// Writes each produced frame into the caller's output arrays.
class ArraySink : public kws::FrameSink {
 public:
  ArraySink(int8_t* features, float* mfcc) : features_(features), mfcc_(mfcc) {}
  void OnFrame(const int8_t* features, const float* mfcc) override {
    for (int c = 0; c < kws::dims::kNumMfcc; ++c) {
      features_[count_ * kws::dims::kNumMfcc + c] = features[c];
      if (mfcc_) mfcc_[count_ * kws::dims::kNumMfcc + c] = mfcc[c];
    }
    ++count_;
  }

 private:
  int8_t* features_;
  float* mfcc_;
  int count_ = 0;
};

class HostClock : public kws::Clock {
 public:
  uint32_t NowMicros() override {
    using namespace std::chrono;
    return static_cast<uint32_t>(
        duration_cast<microseconds>(steady_clock::now().time_since_epoch()).count());
  }
};

class CallbackRunner : public kws::ModelRunner {
 public:
  CallbackRunner(kws_run_fn fn, kws_reset_fn reset, void* user, uint32_t arena)
      : fn_(fn), reset_(reset), user_(user), arena_(arena) {}
  bool Run(const int8_t* input, int8_t* output) override { return fn_(user_, input, output) != 0; }
  void Reset() override {
    if (reset_) reset_(user_);
  }
  uint32_t arena_used_bytes() const override { return arena_; }

 private:
  kws_run_fn fn_;
  kws_reset_fn reset_;
  void* user_;
  uint32_t arena_;
};

class CallbackReporter : public kws::Reporter {
 public:
  CallbackReporter(kws_report_fn fn, void* user) : fn_(fn), user_(user) {}
  void Report(const char* line) override {
    if (fn_) fn_(user_, line);
  }

 private:
  kws_report_fn fn_;
  void* user_;
};

}  // namespace

struct kws_frontend {
  OwnedTables owned;
  kws::MfccFrontend frontend;
};

struct kws_recognizer {
  kws::Recognizer recognizer;
};

struct kws_app {
  kws_app(kws_run_fn run, kws_reset_fn reset, kws_report_fn report, void* user, uint32_t arena)
      : runner(run, reset, user, arena), reporter(report, user) {}
  OwnedTables owned;
  std::vector<std::string> label_storage;
  std::vector<const char*> labels;
  HostClock clock;
  CallbackRunner runner;
  CallbackReporter reporter;
  kws::KwsApp app;
  int32_t num_classes = 0;
};

extern "C" {

int32_t kws_core_dims(int32_t* out, int32_t n) {
  const int32_t dims[] = {kws::dims::kSampleRate, kws::dims::kWindowSamples,
                          kws::dims::kHopSamples, kws::dims::kFftSize,
                          kws::dims::kNumFftBins, kws::dims::kNumMel,
                          kws::dims::kNumMfcc,    kws::dims::kNumFrames,
                          kws::dims::kMaxClasses};
  const int32_t count = static_cast<int32_t>(sizeof(dims) / sizeof(dims[0]));
  for (int32_t i = 0; i < n && i < count; ++i) out[i] = dims[i];
  return count;
}

int32_t kws_c_api_version(void) { return KWS_C_API_VERSION; }

kws_frontend* kws_frontend_create(const kws_frontend_params* params) {
  kws_frontend* fe = new (std::nothrow) kws_frontend;
  if (!fe) return nullptr;
  if (!fe->owned.Load(params) || !fe->frontend.Init(fe->owned.tables)) {
    delete fe;
    return nullptr;
  }
  return fe;
}

void kws_frontend_destroy(kws_frontend* fe) { delete fe; }

void kws_frontend_reset(kws_frontend* fe) {
  if (fe) fe->frontend.Reset();
}

int32_t kws_frontend_frames_for(const kws_frontend* fe, int32_t n) {
  if (!fe || n <= 0) return 0;
  const int32_t first = fe->frontend.samples_until_frame();
  if (n < first) return 0;
  return 1 + (n - first) / kws::dims::kHopSamples;
}

int32_t kws_frontend_feed(kws_frontend* fe, const int16_t* samples, int32_t n,
                          int8_t* out_features, float* out_mfcc, int32_t max_frames) {
  if (!fe || n < 0 || (n > 0 && !samples) || !out_features) return -1;
  if (kws_frontend_frames_for(fe, n) > max_frames) return -1;
  ArraySink sink(out_features, out_mfcc);
  return fe->frontend.FeedSamples(samples, n, &sink);
}

void kws_recognizer_default_config(kws_recognizer_config* out) {
  const kws::RecognizerConfig d;
  out->average_window_ms = d.average_window_ms;
  out->detection_threshold = d.detection_threshold;
  out->suppression_ms = d.suppression_ms;
  out->minimum_count = d.minimum_count;
  out->num_classes = d.num_classes;
  out->silence_index = d.silence_index;
  out->unknown_index = d.unknown_index;
}

kws_recognizer* kws_recognizer_create(const kws_recognizer_config* config) {
  if (!config) return nullptr;
  kws_recognizer* r = new (std::nothrow) kws_recognizer;
  if (!r) return nullptr;
  if (!r->recognizer.Init(ToRecognizerConfig(*config))) {
    delete r;
    return nullptr;
  }
  return r;
}

void kws_recognizer_destroy(kws_recognizer* r) { delete r; }

void kws_recognizer_reset(kws_recognizer* r) {
  if (r) r->recognizer.Reset();
}

int32_t kws_recognizer_process(kws_recognizer* r, const uint8_t* scores, uint32_t time_ms,
                               kws_recognition* out) {
  if (!r || !scores || !out) return -1;
  FromRecognition(r->recognizer.Process(scores, time_ms), out);
  return 0;
}

int32_t kws_recognizer_replay(kws_recognizer* r, const uint8_t* scores, const uint32_t* times_ms,
                              int32_t n, int32_t* out_labels, int32_t* out_scores,
                              uint32_t* out_times_ms, int32_t max_out) {
  if (!r || n < 0 || (n > 0 && (!scores || !times_ms)) || max_out < 0) return -1;
  if (max_out > 0 && (!out_labels || !out_scores || !out_times_ms)) return -1;
  const int32_t stride = r->recognizer.config().num_classes;
  int32_t found = 0;
  for (int32_t i = 0; i < n; ++i) {
    const kws::Recognition rec = r->recognizer.Process(scores + i * stride, times_ms[i]);
    if (!rec.is_new_command) continue;
    if (found < max_out) {
      out_labels[found] = rec.label;
      out_scores[found] = rec.score;
      out_times_ms[found] = times_ms[i];
    }
    ++found;
  }
  return found;
}

void kws_scores_from_output(const int8_t* output, int32_t n, float scale, int32_t zero_point,
                            int32_t is_logits, float temperature, uint8_t* scores) {
  kws::OutputQuantization q;
  q.scale = scale;
  q.zero_point = zero_point;
  q.is_logits = is_logits != 0;
  q.temperature = temperature;
  kws::ScoresFromOutput(output, n, q, scores);
}

void kws_app_default_config(kws_app_config* out) {
  const kws::AppConfig d;
  out->inference_every_frames = d.inference_every_frames;
  out->wait_for_full_window = d.wait_for_full_window ? 1 : 0;
  out->bench_window = d.bench_window;
  out->bench_report_every = d.bench_report_every;
  out->selftest_tail_ms = d.selftest_tail_ms;
  out->model_input = static_cast<int32_t>(d.model_input);
  out->step_delay_frames = d.step_delay_frames;
  out->output_scale = d.output.scale;
  out->output_zero_point = d.output.zero_point;
  out->output_is_logits = d.output.is_logits ? 1 : 0;
  out->output_temperature = d.output.temperature;
  out->arena_bytes = 0;
  kws_recognizer_default_config(&out->recognizer);
}

kws_app* kws_app_create(const kws_frontend_params* params, const kws_app_config* config,
                        const char* const* labels, kws_run_fn run, kws_reset_fn reset,
                        kws_report_fn report, void* user) {
  if (!config || !run) return nullptr;
  if (config->model_input != KWS_MODEL_INPUT_WINDOW && config->model_input != KWS_MODEL_INPUT_FRAME) {
    return nullptr;
  }
  kws_app* a = new (std::nothrow) kws_app(run, reset, report, user, config->arena_bytes);
  if (!a) return nullptr;
  kws::AppConfig c;
  c.inference_every_frames = config->inference_every_frames;
  c.wait_for_full_window = config->wait_for_full_window != 0;
  c.bench_window = config->bench_window;
  c.bench_report_every = config->bench_report_every;
  c.selftest_tail_ms = config->selftest_tail_ms;
  c.model_input = config->model_input == KWS_MODEL_INPUT_FRAME ? kws::ModelInput::kFrame
                                                               : kws::ModelInput::kWindow;
  c.step_delay_frames = config->step_delay_frames;
  c.output.scale = config->output_scale;
  c.output.zero_point = config->output_zero_point;
  c.output.is_logits = config->output_is_logits != 0;
  c.output.temperature = config->output_temperature;
  c.recognizer = ToRecognizerConfig(config->recognizer);
  if (labels) {
    const int32_t n = config->recognizer.num_classes;
    for (int32_t i = 0; i < n; ++i) a->label_storage.emplace_back(labels[i] ? labels[i] : "");
    for (const std::string& s : a->label_storage) a->labels.push_back(s.c_str());
    c.labels = a->labels.data();
  }
  if (!a->owned.Load(params) ||
      !a->app.Init(a->owned.tables, c, nullptr, &a->clock, &a->runner, &a->reporter)) {
    delete a;
    return nullptr;
  }
  a->num_classes = c.recognizer.num_classes;
  return a;
}

void kws_app_destroy(kws_app* app) { delete app; }

void kws_app_reset(kws_app* app) {
  if (app) app->app.Reset();
}

void kws_app_process(kws_app* app, const int16_t* samples, int32_t n) {
  if (app && samples && n > 0) app->app.ProcessSamples(samples, static_cast<uint32_t>(n));
}

void kws_app_report_bench(kws_app* app) {
  if (app) app->app.ReportBench();
}

int32_t kws_app_self_test(kws_app* app, const int16_t* audio, int32_t n, const int32_t* expected,
                          int32_t num_expected) {
  if (!app || n < 0 || num_expected < 0) return 0;
  return app->app.SelfTest(audio, static_cast<uint32_t>(n), expected, num_expected) ? 1 : 0;
}

int32_t kws_app_counters(const kws_app* app, uint32_t* out, int32_t n) {
  if (!app) return 0;
  const uint32_t values[] = {app->app.frames(), app->app.inferences(), app->app.audio_time_ms(),
                             app->app.invoke_errors(), app->app.recognitions()};
  const int32_t count = static_cast<int32_t>(sizeof(values) / sizeof(values[0]));
  for (int32_t i = 0; out && i < n && i < count; ++i) out[i] = values[i];
  return count;
}

void kws_app_last(const kws_app* app, kws_recognition* out, uint8_t* scores) {
  if (!app) return;
  if (out) FromRecognition(app->app.last_recognition(), out);
  if (scores) {
    for (int32_t i = 0; i < app->num_classes; ++i) scores[i] = app->app.last_scores()[i];
  }
}

}  // extern "C"

#endif  // ARDUINO
