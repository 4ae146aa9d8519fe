// Turns a stream of per-window class scores into discrete commands.
//
// A single inference is noisy, and overlapping windows see the same word many
// times, so: average each class's score over the results of the last
// average_window_ms, report the top class if it is a keyword (not _silence_ /
// _unknown_) whose average reaches detection_threshold with at least
// minimum_count results in the window, and flag it as a *new* command only
// once per occurrence: not within suppression_ms of the previous detection,
// and not again for the same label until its average has dropped below the
// threshold (re-arm), so one long word cannot fire twice.
#ifndef KWS_RECOGNIZER_H_
#define KWS_RECOGNIZER_H_

#include <stdint.h>

#include "kws_dims.h"

namespace kws {

struct RecognizerConfig {
  // Averaging window. With an inference every 40 ms this holds ~12 results.
  // Shorter than the 1 s model input on purpose: a 0.5-0.8 s word is fully
  // inside that input for only ~0.2-0.5 s of stream, and averaging over a
  // whole second would halve its peak score.
  int32_t average_window_ms = 500;
  // On the 0..255 score scale (180 ~ probability 0.7).
  int32_t detection_threshold = 180;
  // No new command within this long after the previous one.
  int32_t suppression_ms = 1000;
  // Do not decide on fewer results than this (e.g. right after start).
  int32_t minimum_count = 3;
  int32_t num_classes = 12;
  // Class indices that are never reported as commands (-1: none).
  int32_t silence_index = 10;
  int32_t unknown_index = 11;
};

struct Recognition {
  bool found;           // a keyword is currently above threshold
  int32_t label;        // top class of the averaged scores (-1 if undecided)
  int32_t score;        // its averaged score, 0..255
  bool is_new_command;  // true exactly once per detected occurrence
};

class Recognizer {
 public:
  // Results kept for averaging; older ones beyond this are dropped even if
  // still inside the window (64 x 40 ms = 2.5 s, far above the default).
  static constexpr int kMaxResults = 64;

  // False if the config is out of range (num_classes > kMaxClasses, ...).
  bool Init(const RecognizerConfig& config);
  void Reset();

  // scores: num_classes values 0..255 for one inference at time_ms (any
  // monotonic clock; differences are taken modulo 2^32 so it may wrap).
  // A result older than the previous one is ignored (found = false).
  Recognition Process(const uint8_t* scores, uint32_t time_ms);

  int results_in_window() const { return count_; }
  const RecognizerConfig& config() const { return config_; }

 private:
  struct Result {
    uint32_t time_ms;
    uint8_t scores[dims::kMaxClasses];
  };
  RecognizerConfig config_;
  Result results_[kMaxResults];
  int head_ = 0;   // index of the oldest result
  int count_ = 0;
  bool has_detection_ = false;
  bool armed_ = true;
  int32_t last_label_ = -1;
  uint32_t last_detection_ms_ = 0;
};

}  // namespace kws

#endif  // KWS_RECOGNIZER_H_
