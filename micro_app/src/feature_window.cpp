#include "feature_window.h"

#include <string.h>

namespace kws {

constexpr int FeatureWindow::kFrames;
constexpr int FeatureWindow::kFrameBytes;
constexpr int FeatureWindow::kBytes;

void FeatureWindow::Reset(int8_t fill) {
  memset(data_, fill, sizeof(data_));
  next_ = 0;
  filled_ = 0;
}

void FeatureWindow::Push(const int8_t* frame) {
  memcpy(data_ + next_ * kFrameBytes, frame, kFrameBytes);
  next_ = (next_ + 1 == kFrames) ? 0 : next_ + 1;
  if (filled_ < kFrames) ++filled_;
}

void FeatureWindow::CopyTo(int8_t* dst) const {
  // Slot next_ holds the oldest frame (or an unfilled one, which reads as the
  // fill value and so lands before the pushed frames, as it should).
  const int tail = (kFrames - next_) * kFrameBytes;
  memcpy(dst, data_ + next_ * kFrameBytes, tail);
  memcpy(dst + tail, data_, next_ * kFrameBytes);
}

const int8_t* FeatureWindow::frame(int t) const {
  int slot = next_ + t;
  if (slot >= kFrames) slot -= kFrames;
  return data_ + slot * kFrameBytes;
}

}  // namespace kws
