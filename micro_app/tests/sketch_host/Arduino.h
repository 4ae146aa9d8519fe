#pragma once
#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#define LEDR 22
#define LEDG 23
#define LEDB 24
#define OUTPUT 1
#define HIGH 1
#define LOW 0
unsigned long millis();
unsigned long micros();
void delay(unsigned long ms);
void delayMicroseconds(unsigned int us);
void pinMode(int pin, int mode);
void digitalWrite(int pin, int value);
void analogWrite(int pin, int value);
bool StubSerialConnected();
class StubSerial {
 public:
  void begin(long) {}
  explicit operator bool() const { return StubSerialConnected(); }
  int available() { return static_cast<int>(strlen(in_ + pos_)); }
  int read() { return in_[pos_] ? in_[pos_++] : -1; }
  void print(const char* s) { fputs(s, stdout); }
  void print(int v) { printf("%d", v); }
  void println(const char* s) { printf("%s\n", s); }
  void println(int v) { printf("%d\n", v); }
  void inject(const char* s) { strncpy(in_, s, sizeof(in_) - 1); pos_ = 0; }
 private:
  char in_[64] = {0};
  size_t pos_ = 0;
};
extern StubSerial Serial;
#ifdef STUB_CMSIS  // the Cortex-M4 cycle counter registers, for the DWT clock path (cross-compile only)
struct StubDwt { volatile uint32_t CTRL, CYCCNT; };
struct StubCoreDebug { volatile uint32_t DEMCR; };
extern StubDwt g_stub_dwt;
extern StubCoreDebug g_stub_core_debug;
extern uint32_t SystemCoreClock;
#define DWT (&g_stub_dwt)
#define CoreDebug (&g_stub_core_debug)
#define CoreDebug_DEMCR_TRCENA_Msk (1u << 24)
#define DWT_CTRL_CYCCNTENA_Msk 1u
#endif
