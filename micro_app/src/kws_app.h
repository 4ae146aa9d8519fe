// The keyword-spotting loop: audio -> MFCC frames -> model -> recogniser ->
// "KWS <label> score=<s> t=<ms>" lines. Two kinds of model (AppConfig::model_input):
//   kWindow  the 1 s int8 window (101 x 32) every inference_every_frames frames;
//   kFrame   a per-frame *step* model: the newest int8 frame (32) every 10 ms hop,
//            the model keeps its own state (ModelRunner::Reset starts it afresh).
//
// Audio, clock, model and output are injected (app_interfaces.h), so this file
// is identical on the board and in the host twin. Timestamps are *audio* time
// (samples consumed since Reset / 16 per ms), not wall time: detections are
// then reproducible from a recording, and the host twin and the board agree
// on them. The clock only measures how long the work takes (BENCH line).
#ifndef KWS_KWS_APP_H_
#define KWS_KWS_APP_H_

#include <stdint.h>

#include "app_interfaces.h"
#include "feature_window.h"
#include "kws_dims.h"
#include "latency_stats.h"
#include "mfcc_frontend.h"
#include "output_scores.h"
#include "recognizer.h"

namespace kws {

// What the model takes as input (and so how often it runs).
enum class ModelInput : int32_t {
  kWindow = 0,  // (1, NUM_FRAMES, NUM_MFCC) window, every inference_every_frames frames
  kFrame = 1,   // (1, 1, 1, NUM_MFCC) newest frame, every frame (stateful step model)
};

struct AppConfig {
  ModelInput model_input = ModelInput::kWindow;
  // kWindow only: run the model every this many new frames (10 ms each). 4 (= 40 ms) gives
  // the recogniser ~12 results per 500 ms average at ~25 inferences/s; a
  // keyword stays in the 1 s window for several hundred ms, so running more
  // often buys little and costs CPU. If the model is slower than this period
  // on the board, Step() degrades gracefully (see there) instead of lagging.
  int32_t inference_every_frames = 4;
  // kFrame only: the step model's look-ahead. Its scores after frame n (1-based,
  // since Reset) describe the 1 s window ending step_delay_frames frames
  // earlier, i.e. frames [n - delay - NUM_FRAMES, n - delay). Generated as
  // kStepDelayFrames (35 for SparkNet).
  int32_t step_delay_frames = 0;
  // kWindow: do not run the model before the window holds NUM_FRAMES real
  // frames (the first 1 s after Reset); a half-empty window only yields noise.
  // kFrame: the model runs on every frame from the first (its state must see
  // them all), but its scores reach the recogniser only from frame
  // NUM_FRAMES + step_delay_frames on (warm-up before that).
  bool wait_for_full_window = true;
  // K for min/median/max in the BENCH line (<= LatencyStats::kMaxWindow).
  int32_t bench_window = 32;
  // Print a BENCH line every this many inferences (model runs); 0: only on
  // ReportBench(). In kFrame mode the model runs every 10 ms hop.
  int32_t bench_report_every = 0;
  // Silence appended by SelfTest() so a keyword at the very end of the
  // recording still gets its averaging window. In kFrame mode
  // step_delay_frames hops are added on top (the model's look-ahead).
  int32_t selftest_tail_ms = 1000;
  // num_classes label strings (kws_settings.h kLabels); may be null (indices).
  const char* const* labels = nullptr;
  OutputQuantization output;
  RecognizerConfig recognizer;  // its num_classes is the model's output size
};

class KwsApp {
 public:
  // Keeps the pointers. False if the tables or config are unusable.
  bool Init(const FrontendTables& tables, const AppConfig& config, AudioSource* source,
            Clock* clock, ModelRunner* runner, Reporter* reporter);

  // Back to the state right after Init (history of zeros, empty window,
  // audio time 0, benchmark statistics cleared).
  void Reset();

  // Drains the audio source, processing it in hop-sized pieces.
  // kWindow: when more than one inference period of audio is still queued
  // behind the piece just read (the model was slower than its period),
  // inferences falling due are deferred until the backlog is gone: every
  // frame is still computed, the model just runs less often, and the ring
  // buffer does not overrun.
  // kFrame: nothing is ever deferred or skipped, because the step model's
  // state must see every frame. If a hop took longer than 10 ms, the frames
  // queued meanwhile are all processed (front-end + model + recogniser each)
  // in this call, back to back, until the source is empty: the app catches
  // up as long as the *average* hop time stays below 10 ms; if it does not,
  // the ring overruns (counted, WARN on the board) and the lost audio is a
  // gap in the stream, not a skipped model step.
  // Returns the number of samples processed.
  int Step();

  // The deterministic core of Step(): processes these samples as if they had
  // just arrived; the model runs exactly every inference_every_frames frames
  // (kWindow) or every frame (kFrame), whatever the chunking. The self-test
  // and the host twin use this.
  void ProcessSamples(const int16_t* samples, uint32_t n);

  // Emits "BENCH mfcc_us=min/med/max invoke_us=min/med/max frames=N
  // invokes=N arena=N overruns=N dropped=N hop_us=min/med/max
  // duty_pct=min/med/max mode=window|frame". hop_us: one 10 ms hop's work
  // (MFCC frame + model run if any + recogniser if any), duty_pct: hop_us as
  // a percentage of the 10 ms hop, with one decimal (e.g. 23.4).
  void ReportBench();

  // Replays `audio` (plus selftest_tail_ms of silence) through the whole
  // pipeline from a Reset, compares the detected labels (in order) with
  // `expected`, reports "SELFTEST PASS|FAIL expected=a,b detected=a,b", and
  // Resets again. Returns true on PASS.
  bool SelfTest(const int16_t* audio, uint32_t n, const int32_t* expected, int num_expected);

  uint32_t audio_time_ms() const;
  uint32_t frames() const { return frames_; }
  uint32_t inferences() const { return inferences_; }  // model runs (warm-up included)
  uint32_t recognitions() const { return recognitions_; }  // score vectors given to the recogniser
  uint32_t invoke_errors() const { return invoke_errors_; }
  const Recognition& last_recognition() const { return last_recognition_; }
  const uint8_t* last_scores() const { return scores_; }
  const FeatureWindow& window() const { return window_; }
  const MfccFrontend& frontend() const { return frontend_; }

 private:
  static constexpr int kMaxRecorded = 16;

  bool frame_mode() const { return config_.model_input == ModelInput::kFrame; }
  void Process(const int16_t* samples, uint32_t n, bool defer_inference);
  // Runs the model on `input` (window or frame); true if it succeeded.
  bool RunModel(const int8_t* input);
  // Scores from output_ -> recogniser -> KWS line.
  void Recognize();
  const char* LabelName(int32_t index, char* scratch, int size) const;
  void Emit(const char* line);

  AppConfig config_;
  AudioSource* source_ = nullptr;
  Clock* clock_ = nullptr;
  ModelRunner* runner_ = nullptr;
  Reporter* reporter_ = nullptr;

  MfccFrontend frontend_;
  FeatureWindow window_;
  Recognizer recognizer_;
  LatencyStats mfcc_us_;
  LatencyStats invoke_us_;
  LatencyStats hop_us_;

  uint64_t samples_ = 0;  // since Reset: the audio clock
  uint32_t frames_ = 0;
  uint32_t inferences_ = 0;
  uint32_t invoke_errors_ = 0;
  uint32_t recognitions_ = 0;
  int32_t frames_since_inference_ = 0;
  Recognition last_recognition_ = {false, -1, 0, false};

  bool recording_ = false;  // SelfTest collects detections here
  int num_recorded_ = 0;
  int32_t recorded_[kMaxRecorded];

  int8_t input_[dims::kFeatureBytes];  // the linearised window (kWindow)
  int8_t output_[dims::kMaxClasses];
  uint8_t scores_[dims::kMaxClasses];
  int16_t read_buffer_[dims::kHopSamples];
};

}  // namespace kws

#endif  // KWS_KWS_APP_H_
