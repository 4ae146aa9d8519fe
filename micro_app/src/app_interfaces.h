// What the app loop needs from the outside world, as small interfaces, so
// the same loop runs on the board (PDM, micros(), TFLM, Serial) and on the
// host (test fakes, the Python device twin through kws_c_api).
//
// Destructors are protected and non-virtual: a virtual destructor would pull
// operator delete, and with it the heap, into the board build.
#ifndef KWS_APP_INTERFACES_H_
#define KWS_APP_INTERFACES_H_

#include <stdint.h>

#include "audio_ring_buffer.h"

namespace kws {

class AudioSource {
 public:
  // Moves up to max_samples of the oldest unread 16 kHz samples into dst.
  virtual int Read(int16_t* dst, int max_samples) = 0;
  // Unread samples waiting (the app uses it to notice it is falling behind).
  virtual int Available() const = 0;
  // Samples lost because the consumer was too slow, for the BENCH line.
  virtual uint32_t dropped_samples() const { return 0; }
  virtual uint32_t overrun_events() const { return 0; }

 protected:
  ~AudioSource() = default;
};

class Clock {
 public:
  // Free-running microseconds (may wrap; only differences are used).
  virtual uint32_t NowMicros() = 0;

 protected:
  ~Clock() = default;
};

class ModelRunner {
 public:
  // input: AppConfig::model_input kWindow: the (1, NUM_FRAMES, NUM_MFCC) int8
  // window, time-major; kFrame: the newest int8 frame (NUM_MFCC values).
  // output: num_classes int8 values in the model's output quantisation.
  // A stateful (step) runner advances its state by one frame per call.
  virtual bool Run(const int8_t* input, int8_t* output) = 0;
  // Back to the initial state (a step model's state tensors at their zero
  // points). KwsApp::Reset() calls it, so Init and SelfTest do too.
  virtual void Reset() {}
  // Interpreter arena actually used, for the BENCH line (0 if unknown).
  virtual uint32_t arena_used_bytes() const { return 0; }

 protected:
  ~ModelRunner() = default;
};

class Reporter {
 public:
  // One complete line, without a trailing newline.
  virtual void Report(const char* line) = 0;

 protected:
  ~Reporter() = default;
};

// The board's source: the PDM interrupt writes the ring, the loop reads it.
class RingBufferSource : public AudioSource {
 public:
  explicit RingBufferSource(AudioRingBuffer* ring) : ring_(ring) {}
  int Read(int16_t* dst, int max_samples) override {
    return max_samples <= 0 ? 0 : static_cast<int>(ring_->Read(dst, static_cast<uint32_t>(max_samples)));
  }
  int Available() const override { return static_cast<int>(ring_->Available()); }
  uint32_t dropped_samples() const override { return ring_->dropped_samples(); }
  uint32_t overrun_events() const override { return ring_->overrun_events(); }

 private:
  AudioRingBuffer* ring_;
};

}  // namespace kws

#endif  // KWS_APP_INTERFACES_H_
