// Lock-free single-producer / single-consumer ring of int16 audio samples.
//
// The producer (the PDM interrupt on the board) never blocks. When it laps
// samples the consumer has not read yet, the consumer notices on its next
// Read(): it skips to the oldest sample that is still intact and adds what it
// lost to dropped_samples() / overrun_events(). An overrun therefore always
// shows up in the counters (and in the BENCH line) instead of silently
// splicing unrelated audio into a frame.
#ifndef KWS_AUDIO_RING_BUFFER_H_
#define KWS_AUDIO_RING_BUFFER_H_

#include <stdint.h>

#include <atomic>

namespace kws {

class AudioRingBuffer {
 public:
  AudioRingBuffer() = default;
  AudioRingBuffer(const AudioRingBuffer&) = delete;
  AudioRingBuffer& operator=(const AudioRingBuffer&) = delete;

  // `storage` (capacity samples) must outlive the buffer. The capacity must
  // be a power of two so that the free-running 32-bit positions stay valid
  // across their wrap-around. Returns false otherwise.
  bool Init(int16_t* storage, uint32_t capacity);

  // Consumer side: forget unread samples and zero the counters.
  void Reset();

  // Producer side. Any n; if n > capacity only the newest capacity samples
  // are stored and the consumer counts the rest as dropped.
  void Write(const int16_t* samples, uint32_t n);

  // Consumer side: unread samples, at most capacity().
  uint32_t Available() const;

  // Consumer side: moves up to max_samples of the oldest unread samples into
  // dst, in order. Returns how many were written to dst.
  uint32_t Read(int16_t* dst, uint32_t max_samples);

  // Copies the newest n samples (oldest first) without consuming anything.
  // Returns how many were copied (fewer if fewer were ever written or the
  // producer overwrote some of them during the copy).
  uint32_t CopyNewest(int16_t* dst, uint32_t n) const;

  uint32_t capacity() const { return capacity_; }
  uint32_t dropped_samples() const { return dropped_; }
  uint32_t overrun_events() const { return overruns_; }

 private:
  void CopyOut(uint32_t from, uint32_t n, int16_t* dst) const;
  // Samples at the front of [from, from+n) that the producer may have
  // overwritten while we were copying them.
  uint32_t Clobbered(uint32_t from, uint32_t n) const;

  int16_t* data_ = nullptr;
  uint32_t capacity_ = 0;
  uint32_t mask_ = 0;
  // Both count samples ever written (mod 2^32). begin_ moves before the
  // producer touches storage, end_ after, so the consumer can tell readable
  // samples (< end_) from samples that may be being overwritten (>= begin_ -
  // capacity). This keeps it correct on a multi-core host too, not only with
  // an interrupt on a single core.
  std::atomic<uint32_t> write_begin_{0};
  std::atomic<uint32_t> write_end_{0};
  uint32_t read_pos_ = 0;  // consumer only
  uint32_t dropped_ = 0;
  uint32_t overruns_ = 0;
};

}  // namespace kws

#endif  // KWS_AUDIO_RING_BUFFER_H_
