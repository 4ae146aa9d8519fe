#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "test_util.h"

namespace {

using kws_test::Collector;

// log-mel energies recovered from the MFCCs: the DCT is orthonormal, so its
// transpose inverts it.
std::vector<float> LogMel(const float* mfcc) {
  std::vector<float> out(kws::kNumMel, 0.0f);
  for (int m = 0; m < kws::kNumMel; ++m) {
    double acc = 0.0;
    for (int c = 0; c < kws::kNumMfcc; ++c) acc += mfcc[c] * kws::kDct[m * kws::kNumMfcc + c];
    out[m] = static_cast<float>(acc);
  }
  return out;
}

Collector FeedInChunks(const std::vector<int16_t>& audio, int chunk) {
  static kws::MfccFrontend fe;  // ~5 KB: keep it off the test's stack
  EXPECT_TRUE(fe.Init(kws::SettingsFrontendTables()));
  Collector sink;
  for (size_t i = 0; i < audio.size(); i += chunk) {
    const int n = static_cast<int>(std::min<size_t>(chunk, audio.size() - i));
    fe.FeedSamples(audio.data() + i, n, &sink);
  }
  return sink;
}

TEST(MfccFrontend, SineEnergyLandsInTheRightMelBand) {
  const double hz = 1000.0;  // FFT bin 32
  const int bin = static_cast<int>(std::lround(hz * kws::kFftSize / kws::kSampleRate));
  Collector frames = FeedInChunks(kws_test::Tone(hz, 0.5, 0.5), 160);
  ASSERT_GE(frames.mfcc_.size(), 10u * kws::kNumMfcc);
  const float* mid = frames.mfcc_.data() + 10 * kws::kNumMfcc;  // well inside the tone
  const std::vector<float> log_mel = LogMel(mid);
  const int top = static_cast<int>(std::max_element(log_mel.begin(), log_mel.end()) - log_mel.begin());
  EXPECT_GE(bin, kws::kMelStart[top]);
  EXPECT_LT(bin, kws::kMelStart[top] + kws::kMelLength[top]);
  // Far-away bands see only window leakage: many orders of magnitude less.
  EXPECT_GT(log_mel[top] - log_mel[kws::kNumMel - 1], 10.0f);
}

TEST(MfccFrontend, SilenceGivesTheLogFloor) {
  Collector frames = FeedInChunks(std::vector<int16_t>(3200, 0), 160);
  ASSERT_EQ(frames.mfcc_.size(), 19u * kws::kNumMfcc);  // 1 + (3200 - 200) / 160
  const std::vector<float> log_mel = LogMel(frames.mfcc_.data() + 5 * kws::kNumMfcc);
  for (float v : log_mel) EXPECT_NEAR(v, std::log(kws::kLogOffset), 1e-4);
}

TEST(MfccFrontend, FrameCountFollowsCentredFraming) {
  kws::MfccFrontend fe;
  ASSERT_TRUE(fe.Init(kws::SettingsFrontendTables()));
  const std::vector<int16_t> audio(16000, 100);
  // Frame t needs sample t*HOP + WINDOW/2 - 1: the first after 200 samples.
  EXPECT_EQ(fe.FeedSamples(audio.data(), 199, nullptr), 0);
  EXPECT_EQ(fe.samples_until_frame(), 1);
  EXPECT_EQ(fe.FeedSamples(audio.data(), 1, nullptr), 1);
  EXPECT_EQ(fe.samples_until_frame(), kws::kHopSamples);
  EXPECT_EQ(fe.FeedSamples(audio.data(), 16000 - 200, nullptr), (16000 - 200) / 160);
  // A 1 s clip plus WINDOW/2 trailing zeros: 101 frames, like features.mfcc_np.
  const std::vector<int16_t> tail(kws::kWindowSamples / 2, 0);
  fe.FeedSamples(tail.data(), static_cast<int>(tail.size()), nullptr);
  EXPECT_EQ(fe.frames_produced(), static_cast<uint32_t>(kws::kNumFrames));
}

TEST(MfccFrontend, ChunkSizeDoesNotChangeFrames) {
  std::vector<int16_t> audio = kws_test::Noise(8000, 0.1, 7);
  const std::vector<int16_t> tone = kws_test::Tone(440.0, 0.5, 0.8);
  audio.insert(audio.end(), tone.begin(), tone.end());
  const Collector ref = FeedInChunks(audio, 160);
  ASSERT_EQ(ref.features_.size(), static_cast<size_t>((16000 - 200) / 160 + 1) * kws::kNumMfcc);
  for (int chunk : {1, 37, 512, 4096}) {
    const Collector got = FeedInChunks(audio, chunk);
    EXPECT_EQ(got.features_, ref.features_) << "chunk " << chunk;
    EXPECT_EQ(got.mfcc_, ref.mfcc_) << "chunk " << chunk;
  }
}

TEST(MfccFrontend, ResetRestartsTheStream) {
  const std::vector<int16_t> audio = kws_test::Noise(4000, 0.2, 3);
  kws::MfccFrontend fe;
  ASSERT_TRUE(fe.Init(kws::SettingsFrontendTables()));
  Collector a, b;
  fe.FeedSamples(audio.data(), 4000, &a);
  fe.Reset();
  fe.FeedSamples(audio.data(), 4000, &b);
  EXPECT_EQ(a.features_, b.features_);
}

TEST(MfccFrontend, InitRejectsMismatchedTables) {
  kws::MfccFrontend fe;
  kws::FrontendTables t = kws::SettingsFrontendTables();
  t.num_mfcc = 13;
  EXPECT_FALSE(fe.Init(t));
  t = kws::SettingsFrontendTables();
  t.mel_weight_count = 10;  // bands would index past the weights
  EXPECT_FALSE(fe.Init(t));
  t = kws::SettingsFrontendTables();
  t.dct = nullptr;
  EXPECT_FALSE(fe.Init(t));
  EXPECT_EQ(fe.FeedSamples(std::vector<int16_t>(1000).data(), 1000, nullptr), 0);
}

TEST(QuantizeInput, FloorPlusHalfAndClamp) {
  EXPECT_EQ(kws::QuantizeInput(0.5f, 1.0f, 0), 1);    // ties go up, like floor(x + 0.5)
  EXPECT_EQ(kws::QuantizeInput(-0.5f, 1.0f, 0), 0);
  EXPECT_EQ(kws::QuantizeInput(-1.5f, 1.0f, 0), -1);
  EXPECT_EQ(kws::QuantizeInput(0.049f, 20.0f, 0), 1);
  EXPECT_EQ(kws::QuantizeInput(2.0f, 20.0f, -3), 37);
  EXPECT_EQ(kws::QuantizeInput(1e9f, 20.0f, 0), 127);
  EXPECT_EQ(kws::QuantizeInput(-1e9f, 20.0f, 5), -128);
  EXPECT_EQ(kws::QuantizeInput(NAN, 20.0f, 0), -128);
}

}  // namespace
