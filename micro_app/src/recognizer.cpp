#include "recognizer.h"

#include <string.h>

namespace kws {

constexpr int Recognizer::kMaxResults;

bool Recognizer::Init(const RecognizerConfig& config) {
  if (config.num_classes < 1 || config.num_classes > dims::kMaxClasses ||
      config.average_window_ms < 0 || config.suppression_ms < 0 ||
      config.minimum_count < 1 || config.minimum_count > kMaxResults ||
      config.detection_threshold < 0 || config.detection_threshold > 255 ||
      config.silence_index >= config.num_classes ||
      config.unknown_index >= config.num_classes) {
    return false;
  }
  config_ = config;
  Reset();
  return true;
}

void Recognizer::Reset() {
  head_ = 0;
  count_ = 0;
  has_detection_ = false;
  armed_ = true;
  last_label_ = -1;
  last_detection_ms_ = 0;
}

Recognition Recognizer::Process(const uint8_t* scores, uint32_t time_ms) {
  Recognition out = {false, -1, 0, false};
  if (count_ > 0) {
    const uint32_t newest = results_[(head_ + count_ - 1) % kMaxResults].time_ms;
    if (static_cast<int32_t>(time_ms - newest) < 0) return out;
  }
  if (count_ == kMaxResults) {  // full: drop the oldest
    head_ = (head_ + 1) % kMaxResults;
    --count_;
  }
  Result& r = results_[(head_ + count_) % kMaxResults];
  r.time_ms = time_ms;
  memcpy(r.scores, scores, config_.num_classes);
  ++count_;
  while (count_ > 1 &&
         time_ms - results_[head_].time_ms > static_cast<uint32_t>(config_.average_window_ms)) {
    head_ = (head_ + 1) % kMaxResults;
    --count_;
  }
  if (count_ < config_.minimum_count) return out;

  int32_t sums[dims::kMaxClasses] = {0};
  for (int i = 0; i < count_; ++i) {
    const uint8_t* s = results_[(head_ + i) % kMaxResults].scores;
    for (int c = 0; c < config_.num_classes; ++c) sums[c] += s[c];
  }
  int32_t top = 0;
  for (int c = 1; c < config_.num_classes; ++c) {
    if (sums[c] > sums[top]) top = c;  // ties: lowest index, deterministic
  }
  out.label = top;
  out.score = sums[top] / count_;
  const bool keyword = top != config_.silence_index && top != config_.unknown_index;
  out.found = keyword && out.score >= config_.detection_threshold;

  // Re-arm once the last detected label is no longer the recognised command.
  if (!out.found || top != last_label_) armed_ = true;
  if (out.found && armed_) {
    const bool suppressed =
        has_detection_ &&
        time_ms - last_detection_ms_ < static_cast<uint32_t>(config_.suppression_ms);
    if (!suppressed) {
      out.is_new_command = true;
      has_detection_ = true;
      armed_ = false;
      last_label_ = top;
      last_detection_ms_ = time_ms;
    }
  }
  return out;
}

}  // namespace kws
