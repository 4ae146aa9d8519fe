#include "audio_ring_buffer.h"

#include <string.h>

namespace kws {

bool AudioRingBuffer::Init(int16_t* storage, uint32_t capacity) {
  if (storage == nullptr || capacity == 0 || (capacity & (capacity - 1)) != 0) {
    return false;
  }
  data_ = storage;
  capacity_ = capacity;
  mask_ = capacity - 1;
  write_begin_.store(0, std::memory_order_relaxed);
  write_end_.store(0, std::memory_order_release);
  read_pos_ = 0;
  dropped_ = 0;
  overruns_ = 0;
  return true;
}

void AudioRingBuffer::Reset() {
  read_pos_ = write_end_.load(std::memory_order_acquire);
  dropped_ = 0;
  overruns_ = 0;
}

void AudioRingBuffer::Write(const int16_t* samples, uint32_t n) {
  if (data_ == nullptr || n == 0) return;
  uint32_t pos = write_end_.load(std::memory_order_relaxed);
  const uint32_t end = pos + n;
  if (n > capacity_) {  // only the newest capacity samples can survive anyway
    samples += n - capacity_;
    pos += n - capacity_;
    n = capacity_;
  }
  write_begin_.store(end, std::memory_order_release);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  const uint32_t start = pos & mask_;
  const uint32_t first = (n < capacity_ - start) ? n : capacity_ - start;
  memcpy(data_ + start, samples, first * sizeof(int16_t));
  memcpy(data_, samples + first, (n - first) * sizeof(int16_t));
  write_end_.store(end, std::memory_order_release);
}

uint32_t AudioRingBuffer::Available() const {
  const uint32_t unread = write_end_.load(std::memory_order_acquire) - read_pos_;
  return unread > capacity_ ? capacity_ : unread;
}

void AudioRingBuffer::CopyOut(uint32_t from, uint32_t n, int16_t* dst) const {
  const uint32_t start = from & mask_;
  const uint32_t first = (n < capacity_ - start) ? n : capacity_ - start;
  memcpy(dst, data_ + start, first * sizeof(int16_t));
  memcpy(dst + first, data_, (n - first) * sizeof(int16_t));
}

uint32_t AudioRingBuffer::Clobbered(uint32_t from, uint32_t n) const {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  const uint32_t ahead = write_begin_.load(std::memory_order_acquire) - from;
  if (ahead <= capacity_) return 0;
  const uint32_t lost = ahead - capacity_;
  return lost < n ? lost : n;
}

uint32_t AudioRingBuffer::Read(int16_t* dst, uint32_t max_samples) {
  if (data_ == nullptr) return 0;
  const uint32_t end = write_end_.load(std::memory_order_acquire);
  uint32_t unread = end - read_pos_;
  if (unread > capacity_) {  // the producer lapped us before this call
    dropped_ += unread - capacity_;
    ++overruns_;
    read_pos_ = end - capacity_;
    unread = capacity_;
  }
  const uint32_t n = unread < max_samples ? unread : max_samples;
  CopyOut(read_pos_, n, dst);
  // The producer may have lapped the front of what we just copied.
  const uint32_t bad = Clobbered(read_pos_, n);
  if (bad > 0) {
    memmove(dst, dst + bad, (n - bad) * sizeof(int16_t));
    dropped_ += bad;
    ++overruns_;
  }
  read_pos_ += n;
  return n - bad;
}

uint32_t AudioRingBuffer::CopyNewest(int16_t* dst, uint32_t n) const {
  if (data_ == nullptr) return 0;
  const uint32_t end = write_end_.load(std::memory_order_acquire);
  if (n > capacity_) n = capacity_;
  if (n > end && end < capacity_) n = end;  // fewer samples ever written
  const uint32_t from = end - n;
  CopyOut(from, n, dst);
  const uint32_t bad = Clobbered(from, n);
  if (bad > 0) memmove(dst, dst + bad, (n - bad) * sizeof(int16_t));
  return n - bad;
}

}  // namespace kws
