// Recording stand-ins: every board call the tests check is printed as a "STUB ..." line.
#include "Arduino.h"
#include "PDM.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/system_setup.h"
#include <stdlib.h>
#ifndef STUB_ARENA_USED  // what AllocateTensors uses for the windowed model
#define STUB_ARENA_USED 12345
#endif
#ifndef STUB_STEP_ARENA_USED  // ... and for the step model
#define STUB_STEP_ARENA_USED 8888
#endif
#ifndef STUB_SERIAL_CONNECTED  // 0: no serial monitor ever opens the port
#define STUB_SERIAL_CONNECTED 1
#endif
#ifndef STUB_MAX_DELAY_MS  // stub time spent in delay() after which the program ends (exit 42)
#define STUB_MAX_DELAY_MS 20000
#endif
StubSerial Serial;
PDMClass PDM;
static unsigned long g_us = 0;
static unsigned long g_delay_ms = 0;
unsigned long micros() { return g_us += 37; }
unsigned long millis() { return micros() / 1000; }
void delay(unsigned long ms) {
  g_us += ms * 1000;
  g_delay_ms += ms;
  if (g_delay_ms > STUB_MAX_DELAY_MS) { printf("STUB exit t=%lu\n", g_us / 1000); fflush(stdout); exit(42); }
}
void delayMicroseconds(unsigned int us) { g_us += us; }
void pinMode(int pin, int mode) { printf("STUB pinMode t=%lu pin=%d mode=%d\n", g_us / 1000, pin, mode); }
void digitalWrite(int pin, int v) { printf("STUB digitalWrite t=%lu pin=%d value=%d\n", g_us / 1000, pin, v); }
void analogWrite(int pin, int v) { printf("STUB analogWrite t=%lu pin=%d value=%d\n", g_us / 1000, pin, v); }
bool StubSerialConnected() { return STUB_SERIAL_CONNECTED != 0; }
namespace tflite { void InitializeTarget() { printf("STUB InitializeTarget\n"); } }
int PDMClass::begin(int channels, long rate) {
  printf("STUB PDM.begin t=%lu\n", g_us / 1000);
  return channels == 1 && rate == 16000;
}
int PDMClass::read(void* dst, int n) {
  if (n > bytes_) n = bytes_;
  memcpy(dst, reinterpret_cast<char*>(buf_) + pos_, n);
  pos_ += n; bytes_ -= n;
  return n;
}
void PDMClass::Push(const int16_t* s, int n) {
  memcpy(buf_, s, n * 2); bytes_ = n * 2; pos_ = 0;
  if (cb_) cb_();
}
// The step model (kStepDelayFrames = STUB_DELAY in the test's kws_settings.h):
//   input 1 "flags": loudness of the last STUB_DELAY + 29 frames (zero point -5 quiet, 7 loud);
//   input 2 "count": frames since reset, two base-100 digits (zero point 3).
// Output 1 sits on top of nothing; output 2 on top of input 1 (as TFLM's planner may place
// it once input 1 has been read), so copying state 1 back first would destroy state 2.
// STUB_STATE_CYCLE also puts input 2 on top of output 1: a cycle that needs staging.
// A state that is not what the model wrote last prints "STUB state corrupt at count N" (once).
#define STUB_DELAY 5
#define STUB_FLAGS (STUB_DELAY + 29)
#ifndef STUB_COUNT_OUT_ZP
#define STUB_COUNT_OUT_ZP 3
#endif
namespace tflite {
static void SetTensor(TfLiteTensor* t, TfLiteIntArray* d, TfLiteIntArray dims, int8_t* data, size_t bytes,
                      float scale, int32_t zp) {
  *d = dims;
  *t = {kTfLiteInt8, {data}, d, {scale, zp}, bytes};
}
MicroInterpreter::MicroInterpreter(const Model* model, const MicroOpResolver&, uint8_t*, size_t size)
    : step_(model->step), size_(size) {}
TfLiteStatus MicroInterpreter::AllocateTensors() {
  printf("STUB AllocateTensors arena=%lu\n", static_cast<unsigned long>(size_));
  const size_t used = step_ ? STUB_STEP_ARENA_USED : STUB_ARENA_USED;
  if (size_ < used) return kTfLiteError;
  used_ = used;
  SetTensor(&out_[0], &out_dims_[0], {2, {1, 12, 0, 0}}, out_data_, 12, 1.0f / 256.0f, -128);
  if (!step_) {
    n_in_ = n_out_ = 1;
    SetTensor(&in_[0], &in_dims_[0], {4, {1, 1, 101, 32}}, in_data_, 101 * 32, STUB_INPUT_SCALE, 0);
    return kTfLiteOk;
  }
  n_in_ = n_out_ = 3;
  SetTensor(&in_[0], &in_dims_[0], {4, {1, 1, 1, 32}}, in_data_, 32, STUB_INPUT_SCALE, 0);
  SetTensor(&in_[1], &in_dims_[1], {4, {1, 1, STUB_FLAGS, 1}}, state_a_, STUB_FLAGS, 0.5f, -5);
  SetTensor(&out_[1], &out_dims_[1], {4, {1, 1, STUB_FLAGS, 1}}, state_c_, STUB_FLAGS, 0.5f, -5);
#ifdef STUB_STATE_CYCLE
  SetTensor(&in_[2], &in_dims_[2], {4, {1, 1, 2, 1}}, state_c_ + 4, 2, 0.25f, 3);
#else
  SetTensor(&in_[2], &in_dims_[2], {4, {1, 1, 2, 1}}, state_b_, 2, 0.25f, 3);
#endif
  SetTensor(&out_[2], &out_dims_[2], {4, {1, 1, 2, 1}}, state_a_ + 10, 2, 0.25f, STUB_COUNT_OUT_ZP);
  return kTfLiteOk;
}
TfLiteStatus MicroInterpreter::Invoke() {
  if (step_) return InvokeStep();
  // "yes" while any of the newest 30 frames has energy in MFCC coefficient 1.
  bool loud = false;
  for (int t = 101 - 30; t < 101; ++t) loud = loud || in_data_[t * 32 + 1] > 20 || in_data_[t * 32 + 1] < -20;
  for (int c = 0; c < 12; ++c) out_data_[c] = -128;
  out_data_[loud ? 0 : 10] = 127;
  return kTfLiteOk;
}
// The same decision, for the window ending STUB_DELAY frames before the newest frame.
TfLiteStatus MicroInterpreter::InvokeStep() {
  int8_t flags[STUB_FLAGS + 1], count[2];  // read every input first, as the graph would
  memcpy(flags, in_[1].data.int8, STUB_FLAGS);
  memcpy(count, in_[2].data.int8, 2);
  const int8_t* f = in_[0].data.int8;
  flags[STUB_FLAGS] = (f[1] > 20 || f[1] < -20) ? 7 : -5;
  const int lo = count[0] - 3, hi = count[1] - 3;
  if (lo == 0 && hi == 0) count_ = 0;  // a reset state
  bool ok = lo >= 0 && lo < 100 && hi >= 0 && hi < 100 && static_cast<unsigned>(lo + 100 * hi) == count_;
  for (int i = 0; i < STUB_FLAGS; ++i) ok = ok && (flags[i] == -5 || flags[i] == 7);
  if (!ok && !corrupt_) {
    corrupt_ = true;
    printf("STUB state corrupt at count %u\n", count_);
  }
  bool loud = false;
  for (int i = 0; i < 30; ++i) loud = loud || flags[i] == 7;
  for (int c = 0; c < 12; ++c) out_data_[c] = -128;
  out_data_[loud ? 0 : 10] = 127;
  memcpy(out_[1].data.int8, flags + 1, STUB_FLAGS);
  ++count_;
  out_[2].data.int8[0] = static_cast<int8_t>(3 + count_ % 100);
  out_[2].data.int8[1] = static_cast<int8_t>(3 + count_ / 100 % 100);
  return kTfLiteOk;
}
}  // namespace tflite
