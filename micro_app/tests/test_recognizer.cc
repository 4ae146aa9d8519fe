#include <gtest/gtest.h>

#include <vector>

#include "output_scores.h"
#include "recognizer.h"

namespace {

constexpr int kClasses = 12;
constexpr int kSilence = 10;
constexpr int kPeriodMs = 40;

struct Event {
  int label;
  int start_ms;
  int end_ms;
  int score;
};

// Posteriors every 40 ms: silence dominates except during the events.
std::vector<kws::Recognition> Detections(kws::Recognizer& r, const std::vector<Event>& events,
                                  int total_ms) {
  std::vector<kws::Recognition> detections;
  for (int t = 0; t < total_ms; t += kPeriodMs) {
    uint8_t s[kClasses] = {0};
    s[kSilence] = 230;
    for (const Event& e : events) {
      if (t >= e.start_ms && t < e.end_ms) {
        s[kSilence] = static_cast<uint8_t>(255 - e.score);
        s[e.label] = static_cast<uint8_t>(e.score);
      }
    }
    const kws::Recognition res = r.Process(s, static_cast<uint32_t>(t));
    if (res.is_new_command) detections.push_back(res);
  }
  return detections;
}

kws::Recognizer Make(const kws::RecognizerConfig& c = kws::RecognizerConfig()) {
  kws::Recognizer r;
  EXPECT_TRUE(r.Init(c));
  return r;
}

TEST(Recognizer, OneDetectionPerOccurrence) {
  kws::Recognizer r = Make();
  // "yes" for 700 ms, "no" for 500 ms two seconds later, "yes" again later.
  const auto d = Detections(r, {{0, 1000, 1700, 240}, {1, 3000, 3500, 235}, {0, 5000, 5600, 250}}, 7000);
  ASSERT_EQ(d.size(), 3u);
  EXPECT_EQ(d[0].label, 0);
  EXPECT_EQ(d[1].label, 1);
  EXPECT_EQ(d[2].label, 0);
  for (const auto& x : d) {
    EXPECT_TRUE(x.found);
    EXPECT_GE(x.score, 180);
    EXPECT_LE(x.score, 255);
  }
}

TEST(Recognizer, LongWordDoesNotFireTwice) {
  kws::Recognizer r = Make();
  // Above threshold for 3 s: longer than the suppression time, still one word.
  EXPECT_EQ(Detections(r, {{4, 500, 3500, 250}}, 5000).size(), 1u);
}

TEST(Recognizer, SuppressionHonoured) {
  kws::RecognizerConfig c;
  // "yes" then "no" 600 ms later, over before the suppression (1 s) ends.
  const std::vector<Event> ev = {{0, 1000, 1400, 250}, {1, 1600, 2100, 250}};
  kws::Recognizer r = Make(c);
  const auto d = Detections(r, ev, 4000);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].label, 0);
  c.suppression_ms = 0;
  kws::Recognizer r2 = Make(c);
  EXPECT_EQ(Detections(r2, ev, 4000).size(), 2u);
}

TEST(Recognizer, NothingBelowThreshold) {
  kws::Recognizer r = Make();
  EXPECT_TRUE(Detections(r, {{2, 1000, 2000, 170}}, 3000).empty());
}

TEST(Recognizer, SilenceAndUnknownAreNeverCommands) {
  kws::Recognizer r = Make();
  EXPECT_TRUE(Detections(r, {{11, 1000, 2000, 250}}, 3000).empty());
  kws::Recognizer r2 = Make();
  EXPECT_TRUE(Detections(r2, {}, 3000).empty());
}

TEST(Recognizer, MinimumCountRespected) {
  kws::RecognizerConfig c;
  c.minimum_count = 5;
  kws::Recognizer r = Make(c);
  uint8_t s[kClasses] = {0};
  s[3] = 255;
  for (int i = 0; i < 4; ++i) {
    const kws::Recognition res = r.Process(s, i * kPeriodMs);
    EXPECT_FALSE(res.found);
    EXPECT_FALSE(res.is_new_command);
  }
  const kws::Recognition res = r.Process(s, 4 * kPeriodMs);
  EXPECT_TRUE(res.is_new_command);
  EXPECT_EQ(res.label, 3);
  EXPECT_EQ(res.score, 255);
}

TEST(Recognizer, AveragesOverTheWindowOnly) {
  kws::RecognizerConfig c;
  c.average_window_ms = 200;  // results within 200 ms of the newest
  kws::Recognizer r = Make(c);
  uint8_t low[kClasses] = {0}, high[kClasses] = {0};
  low[5] = 100;
  high[5] = 250;
  for (int i = 0; i < 10; ++i) r.Process(low, i * kPeriodMs);
  kws::Recognition res = {};
  for (int i = 10; i < 16; ++i) res = r.Process(high, i * kPeriodMs);
  EXPECT_EQ(r.results_in_window(), 6);  // 400..600 ms inclusive
  EXPECT_EQ(res.score, 250);
}

TEST(Recognizer, IgnoresResultsFromThePast) {
  kws::Recognizer r = Make();
  uint8_t s[kClasses] = {0};
  s[0] = 255;
  r.Process(s, 1000);
  EXPECT_EQ(r.Process(s, 500).label, -1);
  EXPECT_EQ(r.results_in_window(), 1);
}

TEST(Recognizer, RejectsBadConfig) {
  kws::Recognizer r;
  kws::RecognizerConfig c;
  c.num_classes = 40;
  EXPECT_FALSE(r.Init(c));
  c = kws::RecognizerConfig();
  c.detection_threshold = 300;
  EXPECT_FALSE(r.Init(c));
}

}  // namespace

// The score temperature spreads what a plain softmax saturates: two outputs with
// logit margins 6 and 9 both score 255 at T = 1 but differ at T = 3, and the
// winner never changes.
TEST(OutputScores, TemperatureUnsaturatesConfidentScores) {
  kws::OutputQuantization q;
  q.scale = 0.25f;
  q.zero_point = 0;
  q.is_logits = true;
  int8_t margin6[kClasses] = {0};
  int8_t margin9[kClasses] = {0};
  margin6[2] = 24;  // 6.0 after scaling
  margin9[2] = 36;  // 9.0
  uint8_t a[kClasses], b[kClasses];
  kws::ScoresFromOutput(margin6, kClasses, q, a);
  kws::ScoresFromOutput(margin9, kClasses, q, b);
  EXPECT_EQ(a[2], 248);  // e^6 / (e^6 + 11)
  EXPECT_EQ(b[2], 255);
  q.temperature = 3.0f;
  kws::ScoresFromOutput(margin6, kClasses, q, a);
  kws::ScoresFromOutput(margin9, kClasses, q, b);
  EXPECT_EQ(a[2], 102);  // e^2 / (e^2 + 11) = 0.402
  EXPECT_EQ(b[2], 165);  // e^3 / (e^3 + 11)
  for (int c = 0; c < kClasses; ++c) {
    if (c != 2) {
      EXPECT_LT(a[c], a[2]);
    }
  }
  q.is_logits = false;  // probabilities are never re-tempered: 6.0 clamps to 255
  kws::ScoresFromOutput(margin6, kClasses, q, a);
  EXPECT_EQ(a[2], 255);
  EXPECT_EQ(a[0], 0);
}
