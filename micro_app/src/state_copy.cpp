#include "state_copy.h"

#include <string.h>

namespace kws {

constexpr int StateCopyPlan::kMaxStates;

namespace {

bool Overlap(const int8_t* a, uint32_t a_bytes, const int8_t* b, uint32_t b_bytes) {
  return a_bytes > 0 && b_bytes > 0 && a < b + b_bytes && b < a + a_bytes;
}

}  // namespace

bool StateCopyPlan::Build(int8_t* const* dst, const int8_t* const* src, const uint32_t* bytes,
                          int n, int8_t* staging, uint32_t staging_capacity) {
  n_ = 0;
  num_direct_ = 0;
  num_staged_ = 0;
  total_bytes_ = 0;
  staging_needed_ = 0;
  staging_ = staging;
  if (n < 0 || n > kMaxStates || (n > 0 && (!dst || !src || !bytes))) return false;
  bool pending[kMaxStates];
  for (int i = 0; i < n; ++i) {
    if (!dst[i] || !src[i]) return false;
    items_[i] = {dst[i], src[i], bytes[i], 0};
    total_bytes_ += bytes[i];
    pending[i] = true;
  }
  n_ = n;
  // Greedy: copy any pending item whose destination overlaps no other pending
  // source; when none is left, stage the smallest pending item and go on.
  for (int left = n; left > 0;) {
    int pick = -1;
    for (int i = 0; i < n && pick < 0; ++i) {
      if (!pending[i]) continue;
      bool clear = true;
      for (int j = 0; j < n && clear; ++j) {
        if (j != i && pending[j]) {
          clear = !Overlap(items_[i].dst, items_[i].bytes, items_[j].src, items_[j].bytes);
        }
      }
      if (clear) pick = i;
    }
    if (pick >= 0) {
      order_[num_direct_++] = pick;
    } else {
      for (int i = 0; i < n; ++i) {
        if (pending[i] && (pick < 0 || items_[i].bytes < items_[pick].bytes)) pick = i;
      }
      items_[pick].staging_offset = staging_needed_;
      staging_needed_ += items_[pick].bytes;
      staged_[num_staged_++] = pick;
    }
    pending[pick] = false;
    --left;
  }
  return staging_needed_ == 0 || (staging != nullptr && staging_needed_ <= staging_capacity);
}

void StateCopyPlan::Copy() const {
  for (int k = 0; k < num_staged_; ++k) {
    const Item& it = items_[staged_[k]];
    memcpy(staging_ + it.staging_offset, it.src, it.bytes);
  }
  for (int k = 0; k < num_direct_; ++k) {
    const Item& it = items_[order_[k]];
    if (it.dst != it.src) memmove(it.dst, it.src, it.bytes);  // may overlap its own source
  }
  for (int k = 0; k < num_staged_; ++k) {
    const Item& it = items_[staged_[k]];
    memcpy(it.dst, staging_ + it.staging_offset, it.bytes);
  }
}

}  // namespace kws
