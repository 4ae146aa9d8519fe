// StateCopyPlan: a step model's outputs 1..S go back into inputs 1..S, right
// even when the arena placed some outputs on top of state inputs.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "state_copy.h"

namespace {

// An "arena" with tensors at given offsets; fills each source with a pattern,
// runs the plan, and checks that each destination got its source's bytes.
struct Arena {
  std::vector<int8_t> bytes = std::vector<int8_t>(1024, 0);
  std::vector<int8_t*> dst;
  std::vector<const int8_t*> src;
  std::vector<uint32_t> size;

  void Add(int dst_offset, int src_offset, uint32_t n) {
    dst.push_back(bytes.data() + dst_offset);
    src.push_back(bytes.data() + src_offset);
    size.push_back(n);
  }
  // Expected destination contents, filled before the copy.
  std::vector<std::vector<int8_t>> Fill() {
    std::vector<std::vector<int8_t>> want;
    for (size_t i = 0; i < src.size(); ++i) {
      int8_t* s = const_cast<int8_t*>(src[i]);
      for (uint32_t k = 0; k < size[i]; ++k) s[k] = static_cast<int8_t>(17 * i + 3 * k + 1);
    }
    for (size_t i = 0; i < src.size(); ++i) want.emplace_back(src[i], src[i] + size[i]);
    return want;
  }
  void Check(const std::vector<std::vector<int8_t>>& want) const {
    for (size_t i = 0; i < dst.size(); ++i) {
      EXPECT_EQ(std::vector<int8_t>(dst[i], dst[i] + size[i]), want[i]) << "state " << i;
    }
  }
};

TEST(StateCopy, DisjointBuffersAreCopiedDirectly) {
  Arena a;
  a.Add(0, 500, 64);
  a.Add(64, 600, 32);
  a.Add(96, 700, 100);
  kws::StateCopyPlan plan;
  ASSERT_TRUE(plan.Build(a.dst.data(), a.src.data(), a.size.data(), 3, nullptr, 0));
  EXPECT_EQ(plan.staging_needed(), 0u);
  EXPECT_EQ(plan.total_bytes(), 196u);
  const auto want = a.Fill();
  plan.Copy();
  a.Check(want);
}

TEST(StateCopy, OutputsOnTopOfOtherInputsAreOrdered) {
  // Output 1 sits on input 0, output 2 on input 1: copy 0, then 1, then 2.
  Arena a;
  a.Add(0, 300, 64);    // state 0: input [0,64),   output [300,364)
  a.Add(100, 10, 64);   // state 1: input [100,164), output [10,74)   (on input 0)
  a.Add(200, 120, 64);  // state 2: input [200,264), output [120,184) (on input 1)
  kws::StateCopyPlan plan;
  ASSERT_TRUE(plan.Build(a.dst.data(), a.src.data(), a.size.data(), 3, nullptr, 0));
  EXPECT_EQ(plan.staging_needed(), 0u);
  const auto want = a.Fill();
  plan.Copy();
  a.Check(want);
}

TEST(StateCopy, CycleUsesTheSmallestStaging) {
  // Output 0 on input 1 and output 1 on input 0: one must be saved first.
  Arena a;
  a.Add(0, 200, 96);   // state 0: input [0,96), output [200,296) (on input 1)
  a.Add(200, 0, 40);   // state 1: input [200,296)... 40 bytes at [200,240), output [0,40)
  kws::StateCopyPlan plan;
  EXPECT_FALSE(plan.Build(a.dst.data(), a.src.data(), a.size.data(), 2, nullptr, 0));
  EXPECT_EQ(plan.staging_needed(), 40u);
  int8_t staging[40];
  EXPECT_FALSE(plan.Build(a.dst.data(), a.src.data(), a.size.data(), 2, staging, 39));
  ASSERT_TRUE(plan.Build(a.dst.data(), a.src.data(), a.size.data(), 2, staging, sizeof(staging)));
  EXPECT_EQ(plan.num_staged(), 1);
  const auto want = a.Fill();
  plan.Copy();
  a.Check(want);
}

TEST(StateCopy, SameBufferAndSelfOverlap) {
  Arena a;
  a.Add(0, 0, 50);     // output is the input itself: nothing to do
  a.Add(100, 110, 50); // overlaps only its own input: memmove
  kws::StateCopyPlan plan;
  ASSERT_TRUE(plan.Build(a.dst.data(), a.src.data(), a.size.data(), 2, nullptr, 0));
  const auto want = a.Fill();
  plan.Copy();
  a.Check(want);
}

TEST(StateCopy, RejectsBadArguments) {
  kws::StateCopyPlan plan;
  EXPECT_TRUE(plan.Build(nullptr, nullptr, nullptr, 0, nullptr, 0));
  plan.Copy();  // nothing
  EXPECT_FALSE(plan.Build(nullptr, nullptr, nullptr, 1, nullptr, 0));
  EXPECT_FALSE(plan.Build(nullptr, nullptr, nullptr, kws::StateCopyPlan::kMaxStates + 1, nullptr, 0));
  int8_t x[4];
  int8_t* dst[] = {nullptr};
  const int8_t* src[] = {x};
  const uint32_t n[] = {4};
  EXPECT_FALSE(plan.Build(dst, src, n, 1, nullptr, 0));
}

}  // namespace
