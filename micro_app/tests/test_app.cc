#include <gtest/gtest.h>

#include <algorithm>
#include <regex>
#include <string>
#include <vector>

#include "test_util.h"

namespace {

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

// "Detects" yes while the newest frame differs from the frame of silence
// (taken from the first run, which the tests make silent); otherwise says
// _silence_. Softmax-style output (scale 1/256, zero point -128).
class FakeRunner : public kws::ModelRunner {
 public:
  bool Run(const int8_t* input, int8_t* output) override {
    ++runs;
    inputs.emplace_back(input, input + kws::dims::kFeatureBytes);
    if (fail) return false;
    const int8_t* newest = input + (kws::dims::kNumFrames - 1) * kws::dims::kNumMfcc;
    if (quiet.empty()) quiet.assign(newest, newest + kws::dims::kNumMfcc);
    const bool loud = !std::equal(quiet.begin(), quiet.end(), newest);
    for (int c = 0; c < 12; ++c) output[c] = -128;
    output[loud ? 0 : 10] = 127;
    return true;
  }
  uint32_t arena_used_bytes() const override { return 18000; }
  int runs = 0;
  bool fail = false;
  std::vector<int8_t> quiet;
  std::vector<std::vector<int8_t>> inputs;
};

struct Fixture {
  Fixture() {
    config = kws::SettingsAppConfig();
    config.bench_window = 16;
  }
  bool Init(kws::AudioSource* source = nullptr) {
    return app.Init(kws::SettingsFrontendTables(), config, source, &clock, &runner, &reporter);
  }
  kws::AppConfig config;
  FakeClock clock;
  FakeRunner runner;
  FakeReporter reporter;
  kws::KwsApp app;
};

std::vector<int16_t> SilenceToneSilence() {
  std::vector<int16_t> audio(16000, 0);
  const auto tone = kws_test::Tone(700.0, 0.6, 0.5);
  audio.insert(audio.end(), tone.begin(), tone.end());
  audio.insert(audio.end(), 16000, 0);
  return audio;
}

TEST(KwsApp, InferencePeriodHonoured) {
  Fixture f;
  ASSERT_TRUE(f.Init());
  const std::vector<int16_t> audio(3 * 16000, 0);
  f.app.ProcessSamples(audio.data(), static_cast<uint32_t>(audio.size()));
  // 3 s -> frames at 200 + 160 t; first model run once 101 frames exist.
  const int frames = 1 + (3 * 16000 - 200) / 160;
  EXPECT_EQ(f.app.frames(), static_cast<uint32_t>(frames));
  EXPECT_EQ(f.runner.runs, 1 + (frames - 101) / 4);
  EXPECT_EQ(f.app.audio_time_ms(), 3000u);
}

TEST(KwsApp, ChunkingDoesNotChangeWhatTheModelSees) {
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
      reference = f.runner.inputs;
      ASSERT_GT(reference.size(), 10u);
    } else {
      EXPECT_EQ(f.runner.inputs, reference) << "chunk " << chunk;
    }
  }
}

TEST(KwsApp, ReportsDetectionsInTheDocumentedFormat) {
  Fixture f;
  ASSERT_TRUE(f.Init());
  const std::vector<int16_t> audio = SilenceToneSilence();
  f.app.ProcessSamples(audio.data(), static_cast<uint32_t>(audio.size()));
  const auto kws_lines = f.reporter.Matching("KWS ");
  ASSERT_EQ(kws_lines.size(), 1u);
  std::smatch m;
  ASSERT_TRUE(std::regex_match(kws_lines[0], m, std::regex(R"(KWS yes score=(\d+) t=(\d+))")))
      << kws_lines[0];
  EXPECT_GE(std::stoi(m[1]), 180);
  EXPECT_LE(std::stoi(m[1]), 255);
  const int t = std::stoi(m[2]);
  EXPECT_GT(t, 1000);  // the tone starts at 1 s
  EXPECT_LT(t, 1700);

  f.app.ReportBench();
  const auto bench = f.reporter.Matching("BENCH ");
  ASSERT_EQ(bench.size(), 1u);
  EXPECT_TRUE(std::regex_match(
      bench[0], std::regex(R"(BENCH mfcc_us=\d+/\d+/\d+ invoke_us=\d+/\d+/\d+ frames=\d+ )"
                           R"(invokes=\d+ arena=18000 overruns=0 dropped=0 hop_us=\d+/\d+/\d+ )"
                           R"(duty_pct=\d+\.\d/\d+\.\d/\d+\.\d mode=window)")))
      << bench[0];
}

TEST(KwsApp, SelfTestPassAndFail) {
  Fixture f;
  ASSERT_TRUE(f.Init());
  const std::vector<int16_t> audio = SilenceToneSilence();
  const int32_t yes[] = {0};
  EXPECT_TRUE(f.app.SelfTest(audio.data(), static_cast<uint32_t>(audio.size()), yes, 1));
  EXPECT_EQ(f.reporter.Matching("SELFTEST").back(), "SELFTEST PASS expected=yes detected=yes");
  const int32_t no_no[] = {1, 1};
  EXPECT_FALSE(f.app.SelfTest(audio.data(), static_cast<uint32_t>(audio.size()), no_no, 2));
  EXPECT_EQ(f.reporter.Matching("SELFTEST").back(), "SELFTEST FAIL expected=no,no detected=yes");
  EXPECT_EQ(f.app.frames(), 0u);  // the self-test leaves a fresh state behind
}

TEST(KwsApp, ModelFailureIsReported) {
  Fixture f;
  ASSERT_TRUE(f.Init());
  f.runner.fail = true;
  const std::vector<int16_t> audio(20000, 0);
  f.app.ProcessSamples(audio.data(), static_cast<uint32_t>(audio.size()));
  EXPECT_GT(f.app.invoke_errors(), 0u);
  EXPECT_EQ(f.reporter.Matching("ERROR").size(), f.app.invoke_errors());
}

TEST(KwsApp, StepDrainsTheRingAndDefersInferenceWhenBehind) {
  static int16_t storage[1 << 16];
  kws::AudioRingBuffer ring;
  ASSERT_TRUE(ring.Init(storage, 1 << 16));
  kws::RingBufferSource source(&ring);
  Fixture f;
  ASSERT_TRUE(f.Init(&source));
  // Real time: 10 ms arrives, the loop runs. Inference every 4 frames.
  const std::vector<int16_t> audio(3 * 16000, 0);
  for (size_t i = 0; i < audio.size(); i += 160) {
    ring.Write(audio.data() + i, 160);
    f.app.Step();
  }
  const int frames = 1 + (3 * 16000 - 200) / 160;
  EXPECT_EQ(f.app.frames(), static_cast<uint32_t>(frames));
  EXPECT_EQ(f.runner.runs, 1 + (frames - 101) / 4);

  // A 2 s backlog (as after a slow model run): all frames are computed, the
  // model runs only once the backlog is below one period.
  Fixture g;
  ring.Reset();
  ASSERT_TRUE(g.Init(&source));
  ring.Write(audio.data(), 32000);
  EXPECT_EQ(g.app.Step(), 32000);
  EXPECT_EQ(g.app.frames(), static_cast<uint32_t>(1 + (32000 - 200) / 160));
  EXPECT_GE(g.runner.runs, 1);
  EXPECT_LE(g.runner.runs, 2);
}

TEST(KwsApp, PeriodicBenchLines) {
  Fixture f;
  f.config.bench_report_every = 10;
  ASSERT_TRUE(f.Init());
  const std::vector<int16_t> audio(2 * 16000, 0);
  f.app.ProcessSamples(audio.data(), static_cast<uint32_t>(audio.size()));
  EXPECT_EQ(f.reporter.Matching("BENCH").size(), f.app.inferences() / 10);
}

TEST(KwsApp, InitRejectsMissingPieces) {
  Fixture f;
  kws::AppConfig bad = f.config;
  bad.inference_every_frames = 0;
  EXPECT_FALSE(f.app.Init(kws::SettingsFrontendTables(), bad, nullptr, &f.clock, &f.runner,
                          &f.reporter));
  EXPECT_FALSE(f.app.Init(kws::SettingsFrontendTables(), f.config, nullptr, nullptr, &f.runner,
                          &f.reporter));
}

}  // namespace
