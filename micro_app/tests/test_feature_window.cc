#include <gtest/gtest.h>

#include <vector>

#include "feature_window.h"

namespace {

constexpr int kFrames = kws::FeatureWindow::kFrames;
constexpr int kBytes = kws::FeatureWindow::kFrameBytes;

std::vector<int8_t> Frame(int id) {
  std::vector<int8_t> f(kBytes);
  for (int c = 0; c < kBytes; ++c) f[c] = static_cast<int8_t>((id * 7 + c) % 251 - 125);
  return f;
}

TEST(FeatureWindow, FillsThenSlidesOneFrameAtATime) {
  static kws::FeatureWindow w;
  w.Reset(-7);
  EXPECT_EQ(w.frames_filled(), 0);
  std::vector<int8_t> out(kws::FeatureWindow::kBytes);
  for (int id = 0; id < 3; ++id) w.Push(Frame(id).data());
  w.CopyTo(out.data());
  // Partial: unfilled frames first (fill value), pushed frames last, in order.
  for (int t = 0; t < kFrames - 3; ++t) ASSERT_EQ(out[t * kBytes], -7) << t;
  for (int id = 0; id < 3; ++id) {
    EXPECT_EQ(std::vector<int8_t>(out.begin() + (kFrames - 3 + id) * kBytes,
                                  out.begin() + (kFrames - 2 + id) * kBytes),
              Frame(id));
  }
  for (int id = 3; id < kFrames; ++id) w.Push(Frame(id).data());
  EXPECT_TRUE(w.full());
  for (int extra = 0; extra < 150; ++extra) {
    w.Push(Frame(kFrames + extra).data());
    ASSERT_EQ(w.frames_filled(), kFrames);
    w.CopyTo(out.data());
    const int oldest = extra + 1;
    for (int t = 0; t < kFrames; t += 25) {  // time-major, oldest first
      ASSERT_EQ(std::vector<int8_t>(out.begin() + t * kBytes, out.begin() + (t + 1) * kBytes),
                Frame(oldest + t));
      ASSERT_EQ(std::vector<int8_t>(w.frame(t), w.frame(t) + kBytes), Frame(oldest + t));
    }
    ASSERT_EQ(std::vector<int8_t>(out.end() - kBytes, out.end()), Frame(kFrames + extra));
  }
}

}  // namespace
