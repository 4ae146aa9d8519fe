// KwsApp with a per-frame (step) model: AppConfig::model_input = kFrame.
#include <gtest/gtest.h>

#include <algorithm>
#include <regex>
#include <string>
#include <vector>

#include "test_util.h"

namespace {

constexpr int kDelay = 35;  // SparkNet's look-ahead

class FakeClock : public kws::Clock {
 public:
  uint32_t NowMicros() override { return now_ += 7; }
  uint32_t now_ = 0;
};

class FakeReporter : public kws::Reporter {
 public:
  void Report(const char* line) override { lines.emplace_back(line); }
  std::vector<std::string> Matching(const char* prefix) const {
    std::vector<std::string> out;
    for (const auto& l : lines) {
      if (l.rfind(prefix, 0) == 0) out.push_back(l);
    }
    return out;
  }
  std::vector<std::string> lines;
};

// A stand-in step model with state: it remembers every frame since Reset and
// says "yes" while any of the `width` frames ending `delay` frames before the
// newest one differs from the first frame after Reset (silence), like a
// windowed model seen through that look-ahead. Each Run costs `cost_us` on
// the fake clock.
class FakeStepRunner : public kws::ModelRunner {
 public:
  explicit FakeStepRunner(FakeClock* clock) : clock_(clock) {}
  bool Run(const int8_t* frame, int8_t* output) override {
    ++runs;
    clock_->now_ += cost_us;
    frames.emplace_back(frame, frame + kws::dims::kNumMfcc);
    if (fail) return false;
    const int n = static_cast<int>(frames.size());
    bool loud = always_yes;
    for (int k = n - 1 - delay; !loud && k >= 0 && k > n - 1 - delay - width; --k) {
      loud = frames[k] != frames[0];
    }
    for (int c = 0; c < 12; ++c) output[c] = -128;
    output[loud ? 0 : 10] = 127;
    return true;
  }
  void Reset() override {
    ++resets;
    frames.clear();
  }
  uint32_t arena_used_bytes() const override { return 9000; }

  FakeClock* clock_;
  uint32_t cost_us = 0;
  int delay = kDelay;
  int width = 30;
  bool always_yes = false;
  bool fail = false;
  int runs = 0;
  int resets = 0;
  std::vector<std::vector<int8_t>> frames;  // since the last Reset
};

struct Fixture {
  Fixture() : runner(&clock) {
    config = kws::SettingsAppConfig();
    config.model_input = kws::ModelInput::kFrame;
    config.step_delay_frames = kDelay;
    config.bench_window = 16;
  }
  bool Init(kws::AudioSource* source = nullptr) {
    return app.Init(kws::SettingsFrontendTables(), config, source, &clock, &runner, &reporter);
  }
  void Process(const std::vector<int16_t>& audio) {
    app.ProcessSamples(audio.data(), static_cast<uint32_t>(audio.size()));
  }
  kws::AppConfig config;
  FakeClock clock;
  FakeStepRunner runner;
  FakeReporter reporter;
  kws::KwsApp app;
};

// Frame n (1-based) is complete once 160 (n - 1) + 200 samples are in.
uint32_t FrameTimeMs(int n) { return static_cast<uint32_t>((160 * (n - 1) + 200) / 16); }

std::vector<int16_t> SilenceToneSilence(double tone_s = 0.6, double tail_s = 1.0) {
  std::vector<int16_t> audio(16000, 0);
  const auto tone = kws_test::Tone(700.0, tone_s, 0.5);
  audio.insert(audio.end(), tone.begin(), tone.end());
  audio.insert(audio.end(), static_cast<size_t>(tail_s * 16000), 0);
  return audio;
}

TEST(KwsAppFrame, ModelRunsOnEveryFrameWithTheFrontEndsFrame) {
  Fixture f;
  ASSERT_TRUE(f.Init());
  EXPECT_EQ(f.runner.resets, 1);  // Init starts the model's state afresh
  const std::vector<int16_t> audio = SilenceToneSilence();
  f.Process(audio);
  const int frames = 1 + (static_cast<int>(audio.size()) - 200) / 160;
  EXPECT_EQ(f.app.frames(), static_cast<uint32_t>(frames));
  EXPECT_EQ(f.runner.runs, frames);  // one model run per 10 ms hop, warm-up included
  EXPECT_EQ(f.app.inferences(), static_cast<uint32_t>(frames));
  EXPECT_EQ(f.app.recognitions(), static_cast<uint32_t>(frames - (101 + kDelay) + 1));

  // What the model saw is exactly the front-end's int8 frame stream.
  static kws::MfccFrontend fe;
  ASSERT_TRUE(fe.Init(kws::SettingsFrontendTables()));
  kws_test::Collector sink;
  fe.FeedSamples(audio.data(), static_cast<int>(audio.size()), &sink);
  ASSERT_EQ(f.runner.frames.size() * kws::dims::kNumMfcc, sink.features_.size());
  for (size_t t = 0; t < f.runner.frames.size(); ++t) {
    ASSERT_TRUE(std::equal(f.runner.frames[t].begin(), f.runner.frames[t].end(),
                           sink.features_.begin() + t * kws::dims::kNumMfcc))
        << "frame " << t;
  }
}

TEST(KwsAppFrame, ChunkingDoesNotChangeWhatTheModelSees) {
  const std::vector<int16_t> audio = SilenceToneSilence();
  std::vector<std::vector<int8_t>> reference;
  for (int chunk : {160, 1, 512, 3000}) {
    Fixture f;
    ASSERT_TRUE(f.Init());
    for (size_t i = 0; i < audio.size(); i += chunk) {
      const uint32_t n = static_cast<uint32_t>(std::min<size_t>(chunk, audio.size() - i));
      f.app.ProcessSamples(audio.data() + i, n);
    }
    if (reference.empty()) {
      reference = f.runner.frames;
    } else {
      EXPECT_EQ(f.runner.frames, reference) << "chunk " << chunk;
    }
  }
}

TEST(KwsAppFrame, WarmUpScoresNeverReachTheRecogniser) {
  // The model says "yes" from its very first frame; with the default
  // minimum_count = 3 the first detection comes at the third scored hop after
  // warm-up, i.e. at frame 101 + delay + 2, stamped with that frame's audio time.
  Fixture f;
  f.runner.always_yes = true;
  ASSERT_TRUE(f.Init());
  f.Process(std::vector<int16_t>(2 * 16000, 0));
  const auto kws_lines = f.reporter.Matching("KWS ");
  ASSERT_FALSE(kws_lines.empty());
  const int first = 101 + kDelay + (f.config.recognizer.minimum_count - 1);
  // (127 at scale 1/256, zero point -128: p = 255/256, score 254.)
  EXPECT_EQ(kws_lines[0], "KWS yes score=254 t=" + std::to_string(FrameTimeMs(first)));

  // Without wait_for_full_window every score counts, from frame 1.
  Fixture g;
  g.runner.always_yes = true;
  g.config.wait_for_full_window = false;
  ASSERT_TRUE(g.Init());
  g.Process(std::vector<int16_t>(16000, 0));
  ASSERT_FALSE(g.reporter.Matching("KWS ").empty());
  EXPECT_EQ(g.reporter.Matching("KWS ")[0],
            "KWS yes score=254 t=" + std::to_string(FrameTimeMs(g.config.recognizer.minimum_count)));
  EXPECT_EQ(g.app.recognitions(), g.app.inferences());
}

TEST(KwsAppFrame, DetectionIsStampedWithAudioTimeAfterTheLookAhead) {
  Fixture f;
  ASSERT_TRUE(f.Init());
  f.Process(SilenceToneSilence());
  const auto kws_lines = f.reporter.Matching("KWS ");
  ASSERT_EQ(kws_lines.size(), 1u);
  std::smatch m;
  ASSERT_TRUE(std::regex_match(kws_lines[0], m, std::regex(R"(KWS yes score=(\d+) t=(\d+))")));
  // The tone starts at 1 s (frame ~99); the fake model reports it 35 frames
  // later and the recogniser needs 3 results: about 1.0 + 0.35 + 0.02 s.
  const int t = std::stoi(m[2]);
  EXPECT_GE(t, 1000 + 10 * kDelay);
  EXPECT_LT(t, 1000 + 10 * kDelay + 100);
}

TEST(KwsAppFrame, StepNeverDefersAndCatchesUpOnEveryQueuedFrame) {
  static int16_t storage[1 << 16];
  kws::AudioRingBuffer ring;
  ASSERT_TRUE(ring.Init(storage, 1 << 16));
  kws::RingBufferSource source(&ring);
  Fixture f;
  ASSERT_TRUE(f.Init(&source));
  const std::vector<int16_t> audio(3 * 16000, 0);
  // A 2 s backlog (as after a stall): every queued frame gets its model run.
  ring.Write(audio.data(), 32000);
  EXPECT_EQ(f.app.Step(), 32000);
  const int frames = 1 + (32000 - 200) / 160;
  EXPECT_EQ(f.app.frames(), static_cast<uint32_t>(frames));
  EXPECT_EQ(f.runner.runs, frames);
  // Then real time, 10 ms at a time.
  for (size_t i = 32000; i < audio.size(); i += 160) {
    ring.Write(audio.data() + i, 160);
    f.app.Step();
  }
  EXPECT_EQ(f.runner.runs, 1 + (3 * 16000 - 200) / 160);
}

TEST(KwsAppFrame, BenchLineReportsHopTimeAndDutyCycle) {
  Fixture f;
  f.runner.cost_us = 2500;
  ASSERT_TRUE(f.Init());
  f.Process(std::vector<int16_t>(16000, 0));
  f.app.ReportBench();
  const auto bench = f.reporter.Matching("BENCH ");
  ASSERT_EQ(bench.size(), 1u);
  // Clock: +7 us per reading, +2500 per model run. A hop reads the clock 5
  // times around one run: mfcc 7, invoke 2507, hop 2528 us = 25.3 % of 10 ms.
  EXPECT_EQ(bench[0],
            "BENCH mfcc_us=7/7/7 invoke_us=2507/2507/2507 frames=99 invokes=99 arena=9000 "
            "overruns=0 dropped=0 hop_us=2528/2528/2528 duty_pct=25.3/25.3/25.3 mode=frame");
}

TEST(KwsAppFrame, PeriodicBenchLinesCountModelRuns) {
  Fixture f;
  f.config.bench_report_every = 100;
  ASSERT_TRUE(f.Init());
  f.Process(std::vector<int16_t>(3 * 16000, 0));
  EXPECT_EQ(f.reporter.Matching("BENCH").size(), f.app.inferences() / 100);
  EXPECT_EQ(f.reporter.Matching("BENCH").size(), 2u);  // 299 hops
}

TEST(KwsAppFrame, SelfTestTailCoversTheLookAhead) {
  // A tone at the very end of the clip (frames 150..182 hear it) and a tail
  // of 400 ms: the fake model says "yes" for hops 185..246, and the 500 ms
  // average needs ~36 of them. Only the 35 extra hops the self-test adds for
  // the look-ahead (to hop 254) get there; 400 ms alone (hop 219) would not.
  Fixture f;
  f.config.selftest_tail_ms = 400;
  ASSERT_TRUE(f.Init());
  std::vector<int16_t> audio(24000, 0);
  const auto tone = kws_test::Tone(700.0, 0.3, 0.5);
  audio.insert(audio.end(), tone.begin(), tone.end());
  const int32_t yes[] = {0};
  EXPECT_TRUE(f.app.SelfTest(audio.data(), static_cast<uint32_t>(audio.size()), yes, 1));
  EXPECT_EQ(f.reporter.Matching("SELFTEST").back(), "SELFTEST PASS expected=yes detected=yes");
  EXPECT_EQ(f.app.frames(), 0u);  // reset afterwards, model state included
  EXPECT_TRUE(f.runner.frames.empty());

  // The same model with its look-ahead not configured: 400 ms fall short.
  Fixture h;
  h.config.selftest_tail_ms = 400;
  h.config.step_delay_frames = 0;
  ASSERT_TRUE(h.Init());
  EXPECT_FALSE(h.app.SelfTest(audio.data(), static_cast<uint32_t>(audio.size()), yes, 1));

  // A model with more look-ahead than configured: the tail falls short.
  Fixture g;
  g.config.selftest_tail_ms = 400;
  g.runner.delay = kDelay + 40;
  ASSERT_TRUE(g.Init());
  EXPECT_FALSE(g.app.SelfTest(audio.data(), static_cast<uint32_t>(audio.size()), yes, 1));
  EXPECT_EQ(g.reporter.Matching("SELFTEST").back(), "SELFTEST FAIL expected=yes detected=");
}

TEST(KwsAppFrame, SelfTestResetsTheModelStateBeforeEachRun) {
  Fixture f;
  ASSERT_TRUE(f.Init());
  const std::vector<int16_t> audio = SilenceToneSilence();
  const int32_t yes[] = {0};
  f.Process(audio);  // leaves state behind
  const int resets = f.runner.resets;
  EXPECT_TRUE(f.app.SelfTest(audio.data(), static_cast<uint32_t>(audio.size()), yes, 1));
  EXPECT_TRUE(f.app.SelfTest(audio.data(), static_cast<uint32_t>(audio.size()), yes, 1));
  EXPECT_EQ(f.runner.resets, resets + 4);  // before and after each self-test
}

TEST(KwsAppFrame, ModelFailureIsReportedEveryHop) {
  Fixture f;
  f.runner.fail = true;
  ASSERT_TRUE(f.Init());
  f.Process(std::vector<int16_t>(16000, 0));
  EXPECT_EQ(f.app.invoke_errors(), f.app.frames());
  EXPECT_EQ(f.app.recognitions(), 0u);
  EXPECT_EQ(f.reporter.Matching("ERROR model run failed").size(), f.app.frames());
}

TEST(KwsAppFrame, InitRejectsBadModeSettings) {
  Fixture f;
  kws::AppConfig bad = f.config;
  bad.step_delay_frames = -1;
  EXPECT_FALSE(f.app.Init(kws::SettingsFrontendTables(), bad, nullptr, &f.clock, &f.runner,
                          &f.reporter));
  bad = f.config;
  bad.model_input = static_cast<kws::ModelInput>(7);
  EXPECT_FALSE(f.app.Init(kws::SettingsFrontendTables(), bad, nullptr, &f.clock, &f.runner,
                          &f.reporter));
}

}  // namespace
