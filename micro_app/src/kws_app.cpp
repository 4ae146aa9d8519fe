#include "kws_app.h"

#include <stdio.h>
#include <string.h>

namespace kws {

constexpr int KwsApp::kMaxRecorded;

bool KwsApp::Init(const FrontendTables& tables, const AppConfig& config, AudioSource* source,
                  Clock* clock, ModelRunner* runner, Reporter* reporter) {
  if (!clock || !runner || !reporter || config.inference_every_frames < 1) return false;
  if (config.model_input != ModelInput::kWindow && config.model_input != ModelInput::kFrame) {
    return false;
  }
  if (config.step_delay_frames < 0 || config.selftest_tail_ms < 0) return false;
  if (!frontend_.Init(tables) || !recognizer_.Init(config.recognizer)) return false;
  config_ = config;
  source_ = source;  // may be null when only ProcessSamples/SelfTest are used
  clock_ = clock;
  runner_ = runner;
  reporter_ = reporter;
  mfcc_us_.Init(config.bench_window);
  invoke_us_.Init(config.bench_window);
  hop_us_.Init(config.bench_window);
  Reset();
  return true;
}

void KwsApp::Reset() {
  frontend_.Reset();
  window_.Reset(0);
  recognizer_.Reset();
  if (runner_) runner_->Reset();
  mfcc_us_.Reset();
  invoke_us_.Reset();
  hop_us_.Reset();
  samples_ = 0;
  frames_ = 0;
  inferences_ = 0;
  invoke_errors_ = 0;
  recognitions_ = 0;
  frames_since_inference_ = 0;
  last_recognition_ = {false, -1, 0, false};
  memset(scores_, 0, sizeof(scores_));
}

uint32_t KwsApp::audio_time_ms() const {
  return static_cast<uint32_t>(samples_ / (dims::kSampleRate / 1000));
}

int KwsApp::Step() {
  if (!source_) return 0;
  const int backlog_limit = dims::kHopSamples * config_.inference_every_frames;
  int total = 0;
  for (;;) {
    const int n = source_->Read(read_buffer_, dims::kHopSamples);
    if (n <= 0) break;
    // A step model is never deferred (its state needs every frame): the
    // backlog is worked off frame by frame, see kws_app.h.
    const bool defer = !frame_mode() && source_->Available() >= backlog_limit;
    Process(read_buffer_, static_cast<uint32_t>(n), defer);
    total += n;
  }
  return total;
}

void KwsApp::ProcessSamples(const int16_t* samples, uint32_t n) { Process(samples, n, false); }

void KwsApp::Process(const int16_t* samples, uint32_t n, bool defer_inference) {
  while (n > 0) {
    // Feed at most up to the next frame boundary, so each call computes at
    // most one frame and the timing below is exactly one frame's cost.
    uint32_t take = static_cast<uint32_t>(frontend_.samples_until_frame());
    if (take > n) take = n;
    const uint32_t t0 = clock_->NowMicros();
    const int produced = frontend_.FeedSamples(samples, static_cast<int>(take), nullptr);
    const uint32_t t1 = clock_->NowMicros();
    samples += take;
    n -= take;
    samples_ += take;
    if (produced == 0) continue;
    mfcc_us_.Add(t1 - t0);
    window_.Push(frontend_.features());
    ++frames_;
    bool ran = false;
    if (frame_mode()) {
      // Every frame, from the first: the step model's state must see them all.
      // Its scores describe the window ending step_delay_frames frames ago;
      // before that window is complete they are warm-up and stay away from
      // the recogniser.
      const bool warm = !config_.wait_for_full_window ||
                        frames_ >= static_cast<uint32_t>(dims::kNumFrames + config_.step_delay_frames);
      if (RunModel(frontend_.features()) && warm) Recognize();
      ran = true;
    } else {
      ++frames_since_inference_;
      const bool window_ready = window_.full() || !config_.wait_for_full_window;
      if (window_ready && !defer_inference &&
          frames_since_inference_ >= config_.inference_every_frames) {
        frames_since_inference_ = 0;
        window_.CopyTo(input_);
        if (RunModel(input_)) Recognize();
        ran = true;
      }
    }
    // One hop's work: this frame's MFCC + the model run + the recogniser.
    hop_us_.Add(clock_->NowMicros() - t0);
    if (ran && config_.bench_report_every > 0 &&
        inferences_ % static_cast<uint32_t>(config_.bench_report_every) == 0) {
      ReportBench();
    }
  }
}

bool KwsApp::RunModel(const int8_t* input) {
  const uint32_t t0 = clock_->NowMicros();
  const bool ok = runner_->Run(input, output_);
  const uint32_t t1 = clock_->NowMicros();
  ++inferences_;
  if (!ok) {
    ++invoke_errors_;
    Emit("ERROR model run failed");
    return false;
  }
  invoke_us_.Add(t1 - t0);
  return true;
}

void KwsApp::Recognize() {
  ++recognitions_;
  ScoresFromOutput(output_, config_.recognizer.num_classes, config_.output, scores_);
  const uint32_t now_ms = audio_time_ms();
  last_recognition_ = recognizer_.Process(scores_, now_ms);
  if (last_recognition_.is_new_command) {
    if (recording_ && num_recorded_ < kMaxRecorded) {
      recorded_[num_recorded_++] = last_recognition_.label;
    }
    char name[12];
    char line[96];
    snprintf(line, sizeof(line), "KWS %s score=%ld t=%lu",
             LabelName(last_recognition_.label, name, sizeof(name)),
             static_cast<long>(last_recognition_.score), static_cast<unsigned long>(now_ms));
    Emit(line);
  }
}

namespace {

// Per mille of the 10 ms hop, rounded: 2345 us -> 235 (printed "23.5").
unsigned long HopPermille(uint32_t us) {
  constexpr uint64_t kHopUs = 1000000ull * dims::kHopSamples / dims::kSampleRate;
  return static_cast<unsigned long>((static_cast<uint64_t>(us) * 1000u + kHopUs / 2) / kHopUs);
}

}  // namespace

void KwsApp::ReportBench() {
  uint32_t m[3], v[3], h[3];
  mfcc_us_.Summary(&m[0], &m[1], &m[2]);
  invoke_us_.Summary(&v[0], &v[1], &v[2]);
  hop_us_.Summary(&h[0], &h[1], &h[2]);
  unsigned long d[3];
  for (int i = 0; i < 3; ++i) d[i] = HopPermille(h[i]);
  const unsigned long overruns = source_ ? source_->overrun_events() : 0;
  const unsigned long dropped = source_ ? source_->dropped_samples() : 0;
  // Integer formatting only: the board's printf may lack %f.
  char line[320];
  snprintf(line, sizeof(line),
           "BENCH mfcc_us=%lu/%lu/%lu invoke_us=%lu/%lu/%lu frames=%lu invokes=%lu "
           "arena=%lu overruns=%lu dropped=%lu hop_us=%lu/%lu/%lu "
           "duty_pct=%lu.%lu/%lu.%lu/%lu.%lu mode=%s",
           static_cast<unsigned long>(m[0]), static_cast<unsigned long>(m[1]),
           static_cast<unsigned long>(m[2]), static_cast<unsigned long>(v[0]),
           static_cast<unsigned long>(v[1]), static_cast<unsigned long>(v[2]),
           static_cast<unsigned long>(frames_), static_cast<unsigned long>(inferences_),
           static_cast<unsigned long>(runner_->arena_used_bytes()), overruns, dropped,
           static_cast<unsigned long>(h[0]), static_cast<unsigned long>(h[1]),
           static_cast<unsigned long>(h[2]), d[0] / 10, d[0] % 10, d[1] / 10, d[1] % 10,
           d[2] / 10, d[2] % 10, frame_mode() ? "frame" : "window");
  Emit(line);
}

bool KwsApp::SelfTest(const int16_t* audio, uint32_t n, const int32_t* expected,
                      int num_expected) {
  Reset();
  recording_ = true;
  num_recorded_ = 0;
  ProcessSamples(audio, n);
  static const int16_t kSilence[dims::kHopSamples] = {0};
  // The tail: selftest_tail_ms of silence, plus the step model's look-ahead
  // (its scores lag the audio by step_delay_frames hops).
  const int32_t tail_hops =
      config_.selftest_tail_ms * (dims::kSampleRate / 1000) / dims::kHopSamples +
      (frame_mode() ? config_.step_delay_frames : 0);
  for (int32_t i = 0; i < tail_hops; ++i) ProcessSamples(kSilence, dims::kHopSamples);
  recording_ = false;

  bool pass = num_recorded_ == num_expected;
  for (int i = 0; pass && i < num_expected; ++i) pass = recorded_[i] == expected[i];

  // "SELFTEST PASS expected=yes,no detected=yes,no", truncated if huge.
  char line[192];
  int len = snprintf(line, sizeof(line), "SELFTEST %s expected=", pass ? "PASS" : "FAIL");
  char name[12];
  for (int list = 0; list < 2; ++list) {
    const int32_t* labels = list == 0 ? expected : recorded_;
    const int count = list == 0 ? num_expected : num_recorded_;
    if (list == 1 && len < static_cast<int>(sizeof(line))) {
      len += snprintf(line + len, sizeof(line) - len, " detected=");
    }
    for (int i = 0; i < count && len < static_cast<int>(sizeof(line)); ++i) {
      len += snprintf(line + len, sizeof(line) - len, "%s%s", i ? "," : "",
                      LabelName(labels[i], name, sizeof(name)));
    }
  }
  Emit(line);
  Reset();
  return pass;
}

const char* KwsApp::LabelName(int32_t index, char* scratch, int size) const {
  if (config_.labels && index >= 0 && index < config_.recognizer.num_classes &&
      config_.labels[index]) {
    return config_.labels[index];
  }
  snprintf(scratch, size, "%ld", static_cast<long>(index));
  return scratch;
}

void KwsApp::Emit(const char* line) { reporter_->Report(line); }

}  // namespace kws
