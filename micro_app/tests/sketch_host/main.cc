// The board scenario (LED, boot, arena tests): setup(), then 1.5 s of silence,
// 0.6 s of a tone ("yes"), 2 s of silence through loop().
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
    delayMicroseconds(16000);  // the audio's own time passes
  }
}
int main() {
  setup();
  printf("STUB setup done t=%lu\n", millis());
  Feed(1.5, 0.0);
  Feed(0.6, 8000.0);
  Feed(2.0, 0.0);
  printf("STUB end t=%lu\n", millis());
  return 0;
}
