// kws::ModelRunner implementations on the TFLM interpreter, and the checks that
// the model in flash fits kws_settings.h (same export).
//
//   TflmWindowRunner  the windowed model: the 1 s int8 window in, 12 scores out.
//   TflmStepRunner    the per-frame step model: input 0 the newest int8 frame,
//                     inputs 1..S its state; output 0 the scores, outputs 1..S
//                     the next state, copied back into inputs 1..S after every
//                     Invoke (kws::StateCopyPlan: safe where the arena planner
//                     put an output on top of a state input); Reset() fills
//                     every state byte with that tensor's zero point.
//
// CheckInputTensor / CheckOutputTensor / TflmStepRunner::Attach write an
// "ERROR ..." line into `line` and return false on a mismatch; the sketch turns
// that into a fatal error with a blink code.
//
// Include AFTER kws_settings.h.
#ifndef KWS_BOARD_RUNNER_H_
#define KWS_BOARD_RUNNER_H_

#include <stdio.h>
#include <string.h>

#include "tensorflow/lite/micro/micro_interpreter.h"

#include "src/app_interfaces.h"
#include "src/kws_dims.h"
#include "src/state_copy.h"

namespace kws_board {

inline long ToNano(float x) { return static_cast<long>(x * 1e9f + (x >= 0 ? 0.5f : -0.5f)); }

inline bool ScaleMatches(float a, float b) {
  const float diff = a > b ? a - b : b - a;
  return diff <= 1e-6f * (b > 0 ? b : -b);
}

// (1, ..., 1, frames, kNumMfcc) int8, quantised as the front-end quantises:
// frames = kNumFrames for the windowed model, 1 for the step model's input 0.
inline bool CheckInputTensor(const TfLiteTensor* t, int frames, char* line, size_t size) {
  const TfLiteIntArray* d = t->dims;
  const int bytes = frames * kws::kNumMfcc;
  bool shape_ok = d != nullptr && d->size >= 2 && d->data[d->size - 1] == kws::kNumMfcc &&
                  d->data[d->size - 2] == frames;
  for (int i = 0; shape_ok && i < d->size - 2; ++i) shape_ok = d->data[i] == 1;
  if (t->type != kTfLiteInt8 || !shape_ok || t->bytes != static_cast<size_t>(bytes)) {
    snprintf(line, size,
             "ERROR input tensor: type %d, %d dims, last two %d x %d, %lu bytes; the features "
             "need int8 (1, %d, %d) = %d bytes",
             static_cast<int>(t->type), d ? d->size : -1, d && d->size >= 2 ? d->data[d->size - 2] : -1,
             d && d->size >= 1 ? d->data[d->size - 1] : -1, static_cast<unsigned long>(t->bytes),
             frames, kws::kNumMfcc, bytes);
    return false;
  }
  if (!ScaleMatches(t->params.scale, kws::kInputScale) ||
      t->params.zero_point != kws::kInputZeroPoint) {
    snprintf(line, size,
             "ERROR input quantisation: model scale %ld e-9 zp %ld, kws_settings.h scale %ld e-9 zp %ld "
             "(model and header from different exports?)",
             ToNano(t->params.scale), static_cast<long>(t->params.zero_point), ToNano(kws::kInputScale),
             static_cast<long>(kws::kInputZeroPoint));
    return false;
  }
  return true;
}

// int8 x kNumClasses, in kws_settings.h's output quantisation.
inline bool CheckOutputTensor(const TfLiteTensor* t, char* line, size_t size) {
  if (t->type != kTfLiteInt8 || t->bytes != static_cast<size_t>(kws::kNumClasses)) {
    snprintf(line, size, "ERROR output tensor: type %d, %lu bytes; expected int8 x %d classes",
             static_cast<int>(t->type), static_cast<unsigned long>(t->bytes), kws::kNumClasses);
    return false;
  }
  if (kws::kHasOutputQuantization &&
      (!ScaleMatches(t->params.scale, kws::kOutputScale) || t->params.zero_point != kws::kOutputZeroPoint)) {
    snprintf(line, size,
             "ERROR output quantisation: model scale %ld e-9 zp %ld, kws_settings.h scale %ld e-9 zp %ld",
             ToNano(t->params.scale), static_cast<long>(t->params.zero_point), ToNano(kws::kOutputScale),
             static_cast<long>(kws::kOutputZeroPoint));
    return false;
  }
  return true;
}

// The windowed model: the (1, kNumFrames, kNumMfcc) window in, the scores out.
class TflmWindowRunner : public kws::ModelRunner {
 public:
  // After AllocateTensors and CheckInputTensor(input(0), kNumFrames) / CheckOutputTensor(output(0)).
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

// The per-frame step model (kws_tf.step_graph): frame + state in, scores + next state out.
class TflmStepRunner : public kws::ModelRunner {
 public:
  static constexpr int kMaxStates = kws::StateCopyPlan::kMaxStates;

  // After AllocateTensors and CheckInputTensor(input(0), 1) / CheckOutputTensor(output(0)).
  // Checks the number of states against kws_settings.h and every state pair
  // (input i and output i: int8, same bytes, scale and zero point, so the bytes
  // can be copied back), plans the copies, and resets the state. `staging`
  // (staging_bytes) is used only for overlapping copy cycles.
  bool Attach(tflite::MicroInterpreter* interpreter, int8_t* staging, uint32_t staging_bytes,
              char* line, size_t size) {
    interpreter_ = interpreter;
    frame_ = interpreter->input(0);
    scores_ = interpreter->output(0);
    arena_used_ = static_cast<uint32_t>(interpreter->arena_used_bytes());
    num_states_ = 0;
    const int inputs = static_cast<int>(interpreter->inputs_size());
    const int outputs = static_cast<int>(interpreter->outputs_size());
    const int states = inputs - 1;
    if (states != kws::kStepNumStates || states < 1 || states > kMaxStates || outputs < inputs) {
      snprintf(line, size,
               "ERROR step model: %d inputs, %d outputs; kws_settings.h expects 1 + %d states in and out "
               "(model and header from different exports?)",
               inputs, outputs, kws::kStepNumStates);
      return false;
    }
    int8_t* dst[kMaxStates];
    const int8_t* src[kMaxStates];
    uint32_t bytes[kMaxStates];
    for (int i = 1; i <= states; ++i) {
      const TfLiteTensor* in = interpreter->input(i);
      const TfLiteTensor* out = interpreter->output(i);
      if (in == nullptr || out == nullptr || in->type != kTfLiteInt8 || out->type != in->type ||
          in->bytes != out->bytes || in->bytes == 0 || !ScaleMatches(out->params.scale, in->params.scale) ||
          out->params.zero_point != in->params.zero_point) {
        snprintf(line, size,
                 "ERROR step model state %d: input type %d %lu bytes scale %ld e-9 zp %ld, output type %d "
                 "%lu bytes scale %ld e-9 zp %ld; they must match to copy the state back",
                 i, in ? static_cast<int>(in->type) : -1, in ? static_cast<unsigned long>(in->bytes) : 0ul,
                 in ? ToNano(in->params.scale) : 0l, in ? static_cast<long>(in->params.zero_point) : 0l,
                 out ? static_cast<int>(out->type) : -1, out ? static_cast<unsigned long>(out->bytes) : 0ul,
                 out ? ToNano(out->params.scale) : 0l, out ? static_cast<long>(out->params.zero_point) : 0l);
        return false;
      }
      dst[i - 1] = in->data.int8;
      src[i - 1] = out->data.int8;
      bytes[i - 1] = static_cast<uint32_t>(in->bytes);
      zero_point_[i - 1] = static_cast<int8_t>(in->params.zero_point);
    }
    if (!plan_.Build(dst, src, bytes, states, staging, staging_bytes)) {
      snprintf(line, size,
               "ERROR step model: its state copies need %lu bytes of staging (state outputs placed on "
               "top of state inputs in a cycle), KWS_STEP_STAGING_BYTES is %lu: build with "
               "-DKWS_STEP_STAGING_BYTES=%lu",
               static_cast<unsigned long>(plan_.staging_needed()), static_cast<unsigned long>(staging_bytes),
               static_cast<unsigned long>(plan_.staging_needed()));
      return false;
    }
    for (int i = 0; i < states; ++i) {
      state_[i] = dst[i];
      state_bytes_[i] = bytes[i];
    }
    num_states_ = states;
    Reset();
    return true;
  }

  bool Run(const int8_t* frame, int8_t* output) override {
    memcpy(frame_->data.int8, frame, kws::kNumMfcc);
    if (interpreter_->Invoke() != kTfLiteOk) return false;
    memcpy(output, scores_->data.int8, kws::kNumClasses);
    plan_.Copy();  // next state -> state inputs, for the next hop
    return true;
  }

  void Reset() override {
    for (int i = 0; i < num_states_; ++i) memset(state_[i], zero_point_[i], state_bytes_[i]);
  }

  uint32_t arena_used_bytes() const override { return arena_used_; }
  int num_states() const { return num_states_; }
  uint32_t state_bytes() const { return plan_.total_bytes(); }
  int staged_states() const { return plan_.num_staged(); }

 private:
  tflite::MicroInterpreter* interpreter_ = nullptr;
  TfLiteTensor* frame_ = nullptr;
  TfLiteTensor* scores_ = nullptr;
  uint32_t arena_used_ = 0;
  int num_states_ = 0;
  int8_t* state_[kMaxStates] = {};
  uint32_t state_bytes_[kMaxStates] = {};
  int8_t zero_point_[kMaxStates] = {};
  kws::StateCopyPlan plan_;
};

}  // namespace kws_board

#endif  // KWS_BOARD_RUNNER_H_
