// Copies a step model's next state (its outputs 1..S) back into its state
// inputs (inputs 1..S) after each Invoke, safely when the buffers overlap.
//
// Why overlap matters: TFLM's memory planner keeps a graph input alive only
// until the last op that reads it, so a later tensor, including another
// state *output*, may be placed on top of a state input's bytes. Copying
// output i -> input i could then overwrite output j before it is read. The
// plan orders the copies so that no copy writes over an output still to be
// copied; when the overlaps form a cycle, it saves the smallest remaining
// outputs into a caller-provided staging buffer first. Plain memcpy when the
// arena has no such overlap (the usual case): no extra RAM, no extra copy.
//
// Portable (no TFLM include): the board's step runner builds the plan from
// the interpreter's tensors once, after AllocateTensors.
#ifndef KWS_STATE_COPY_H_
#define KWS_STATE_COPY_H_

#include <stdint.h>

namespace kws {

class StateCopyPlan {
 public:
  static constexpr int kMaxStates = 32;

  // dst[i] <- src[i], bytes[i] bytes, for i < n. `staging` (may be null) is
  // used only if the overlaps need it. False if n > kMaxStates, a pointer is
  // null, or staging_capacity is smaller than staging_needed() (the plan is
  // unusable then; staging_needed() still says how much it would need).
  bool Build(int8_t* const* dst, const int8_t* const* src, const uint32_t* bytes, int n,
             int8_t* staging, uint32_t staging_capacity);

  // Performs the copies (call after each Invoke).
  void Copy() const;

  int num_states() const { return n_; }
  uint32_t total_bytes() const { return total_bytes_; }
  uint32_t staging_needed() const { return staging_needed_; }
  int num_staged() const { return num_staged_; }

 private:
  struct Item {
    int8_t* dst;
    const int8_t* src;
    uint32_t bytes;
    uint32_t staging_offset;  // into staging_, for staged items
  };
  Item items_[kMaxStates];
  int order_[kMaxStates];   // direct copies, in this order
  int staged_[kMaxStates];  // saved to staging first, restored last
  int n_ = 0;
  int num_direct_ = 0;
  int num_staged_ = 0;
  uint32_t total_bytes_ = 0;
  uint32_t staging_needed_ = 0;
  int8_t* staging_ = nullptr;
};

}  // namespace kws

#endif  // KWS_STATE_COPY_H_
