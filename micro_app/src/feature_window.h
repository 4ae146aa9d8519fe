// The model input: the newest NUM_FRAMES int8 feature frames, time-major
// (frame t occupies bytes [t*NUM_MFCC, (t+1)*NUM_MFCC), oldest first), which
// is the (1, 101, 32) tensor layout.
//
// Stored as a ring of frames so that a new frame costs a 32-byte copy; the
// linear layout is produced only when the model actually runs (CopyTo), which
// happens every few frames and needs a copy into the interpreter's input
// tensor anyway.
#ifndef KWS_FEATURE_WINDOW_H_
#define KWS_FEATURE_WINDOW_H_

#include <stdint.h>

#include "kws_dims.h"

namespace kws {

class FeatureWindow {
 public:
  static constexpr int kFrames = dims::kNumFrames;
  static constexpr int kFrameBytes = dims::kNumMfcc;
  static constexpr int kBytes = kFrames * kFrameBytes;

  // Empties the window. Frames not yet pushed read as `fill` (use the input
  // zero point, or the features of silence, if a partial window is ever run).
  void Reset(int8_t fill = 0);

  // Appends the newest frame, dropping the oldest once the window is full.
  void Push(const int8_t* frame);

  // Writes the kBytes time-major window (oldest frame first) to dst.
  void CopyTo(int8_t* dst) const;

  // Frame t of the window, t = 0 oldest ... kFrames - 1 newest.
  const int8_t* frame(int t) const;

  int frames_filled() const { return filled_; }
  bool full() const { return filled_ == kFrames; }

 private:
  int8_t data_[kBytes];
  int next_ = 0;    // ring slot the next frame goes to (= oldest slot when full)
  int filled_ = 0;  // frames pushed since Reset, capped at kFrames
};

}  // namespace kws

#endif  // KWS_FEATURE_WINDOW_H_
