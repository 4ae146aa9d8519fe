// The serial session (tests/test_sketch_board.py, "serial session"): setup(), the commands
// h (banner), b (bench on) around 1.5 s of silence, 0.6 s of a tone ("yes") and 1.5 s of silence,
// r, then x (bench off) + t (self-test), and an overrun: 1.3 s of audio without the loop.
// No time passes with the audio here: the stub clock advances only as the sketch reads it.
#include <math.h>
#include "Arduino.h"
#include "PDM.h"
void setup();
void loop();
static void Feed(double seconds, double amplitude) {
  static long n = 0;
  int16_t chunk[256];
  for (long k = 0; k < static_cast<long>(seconds * 16000) / 256; ++k) {
    for (int i = 0; i < 256; ++i, ++n) chunk[i] = static_cast<int16_t>(amplitude * sin(2 * M_PI * 700.0 * n / 16000));
    PDM.Push(chunk, 256);
    loop();
  }
}
int main() {
  setup();
  Serial.inject("h\n");
  loop();
  Serial.inject("b");
  Feed(1.5, 0.0);
  Feed(0.6, 8000.0);
  Feed(1.5, 0.0);
  Serial.inject("r");
  loop();
  Serial.inject("xt");
  loop();
  int16_t chunk[256] = {0};
  for (int k = 0; k < 80; ++k) PDM.Push(chunk, 256);  // 1.3 s without the loop: overrun
  for (int k = 0; k < 200; ++k) { PDM.Push(chunk, 256); loop(); }
  return 0;
}
