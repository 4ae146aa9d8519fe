#include <gtest/gtest.h>

#include <vector>

#include "audio_ring_buffer.h"

namespace {

std::vector<int16_t> Ramp(int start, int n) {
  std::vector<int16_t> v(n);
  for (int i = 0; i < n; ++i) v[i] = static_cast<int16_t>(start + i);
  return v;
}

TEST(AudioRingBuffer, RejectsNonPowerOfTwo) {
  int16_t storage[100];
  kws::AudioRingBuffer ring;
  EXPECT_FALSE(ring.Init(storage, 100));
  EXPECT_FALSE(ring.Init(nullptr, 64));
  EXPECT_TRUE(ring.Init(storage, 64));
}

TEST(AudioRingBuffer, WrapsInOrderWithOddChunks) {
  int16_t storage[64];
  kws::AudioRingBuffer ring;
  ASSERT_TRUE(ring.Init(storage, 64));
  int written = 0, read = 0;
  const int chunks[] = {7, 33, 1, 50, 13};
  for (int round = 0; round < 200; ++round) {
    const int n = chunks[round % 5];
    auto data = Ramp(written, n);
    ring.Write(data.data(), n);
    written += n;
    ASSERT_EQ(ring.Available(), static_cast<uint32_t>(written - read));
    int16_t out[64];
    const uint32_t got = ring.Read(out, 64);
    for (uint32_t i = 0; i < got; ++i) ASSERT_EQ(out[i], static_cast<int16_t>(read + i));
    read += got;
  }
  EXPECT_EQ(read, written);
  EXPECT_EQ(ring.dropped_samples(), 0u);
  EXPECT_EQ(ring.overrun_events(), 0u);
}

TEST(AudioRingBuffer, CountsOverrunAndKeepsNewest) {
  int16_t storage[64];
  kws::AudioRingBuffer ring;
  ASSERT_TRUE(ring.Init(storage, 64));
  auto data = Ramp(0, 74);
  ring.Write(data.data(), 30);
  ring.Write(data.data() + 30, 44);  // laps 10 unread samples
  EXPECT_EQ(ring.Available(), 64u);
  int16_t out[80];
  ASSERT_EQ(ring.Read(out, 80), 64u);
  EXPECT_EQ(out[0], 10);
  EXPECT_EQ(out[63], 73);
  EXPECT_EQ(ring.dropped_samples(), 10u);
  EXPECT_EQ(ring.overrun_events(), 1u);
  EXPECT_EQ(ring.Read(out, 80), 0u);
}

TEST(AudioRingBuffer, OversizedWriteKeepsNewestCapacity) {
  int16_t storage[16];
  kws::AudioRingBuffer ring;
  ASSERT_TRUE(ring.Init(storage, 16));
  auto data = Ramp(100, 40);
  ring.Write(data.data(), 40);
  int16_t out[16];
  ASSERT_EQ(ring.Read(out, 16), 16u);
  EXPECT_EQ(out[0], 124);
  EXPECT_EQ(out[15], 139);
  EXPECT_EQ(ring.dropped_samples(), 24u);
}

TEST(AudioRingBuffer, CopyNewestDoesNotConsume) {
  int16_t storage[32];
  kws::AudioRingBuffer ring;
  ASSERT_TRUE(ring.Init(storage, 32));
  auto data = Ramp(0, 50);
  ring.Write(data.data(), 50);
  int16_t out[32];
  ASSERT_EQ(ring.CopyNewest(out, 5), 5u);
  EXPECT_EQ(out[0], 45);
  EXPECT_EQ(out[4], 49);
  EXPECT_EQ(ring.Available(), 32u);
  kws::AudioRingBuffer fresh;
  ASSERT_TRUE(fresh.Init(storage, 32));
  fresh.Write(data.data(), 3);
  EXPECT_EQ(fresh.CopyNewest(out, 10), 3u);
}

TEST(AudioRingBuffer, ResetDropsUnreadAndCounters) {
  int16_t storage[16];
  kws::AudioRingBuffer ring;
  ASSERT_TRUE(ring.Init(storage, 16));
  auto data = Ramp(0, 40);
  ring.Write(data.data(), 40);
  ring.Reset();
  EXPECT_EQ(ring.Available(), 0u);
  int16_t out[16];
  EXPECT_EQ(ring.Read(out, 16), 0u);
  EXPECT_EQ(ring.dropped_samples(), 0u);
}

}  // namespace
