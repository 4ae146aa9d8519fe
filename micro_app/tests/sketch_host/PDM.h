#pragma once
#include <stdint.h>
class PDMClass {
 public:
  void onReceive(void (*cb)()) { cb_ = cb; }
  int begin(int channels, long rate);
  void end() {}
  void setGain(int) {}
  int available() { return bytes_; }
  int read(void* dst, int n);
  void Push(const int16_t* samples, int n);  // test helper: "DMA" then IRQ
 private:
  void (*cb_)() = nullptr;
  int16_t buf_[256];
  int bytes_ = 0;
  int pos_ = 0;
};
extern PDMClass PDM;
