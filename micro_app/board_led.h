// The Nano 33 BLE's RGB LED: a colour per keyword, red for errors.
#ifndef KWS_BOARD_LED_H_
#define KWS_BOARD_LED_H_

#include <Arduino.h>

namespace kws_board {

struct Rgb {
  uint8_t r, g, b;
};

// Colour per class index (labels.py order: yes no up down left right on off stop go).
constexpr Rgb kClassColours[] = {
    {0, 255, 0},     // yes    green
    {255, 0, 0},     // no     red
    {0, 0, 255},     // up     blue
    {255, 160, 0},   // down   yellow
    {0, 255, 255},   // left   cyan
    {255, 0, 255},   // right  magenta
    {255, 255, 255}, // on     white
    {255, 40, 0},    // off    orange
    {120, 0, 255},   // stop   violet
    {120, 255, 0},   // go     lime
};
constexpr int kNumClassColours = sizeof(kClassColours) / sizeof(kClassColours[0]);
constexpr Rgb kRed = {255, 0, 0};

// Active low, PWM through analogWrite; Tick() turns it off when its time is up.
class Led {
 public:
  void Begin() {
    pinMode(LEDR, OUTPUT);
    pinMode(LEDG, OUTPUT);
    pinMode(LEDB, OUTPUT);
    Off();
  }
  void Set(const Rgb& c, uint32_t duration_ms) {
    analogWrite(LEDR, 255 - c.r);
    analogWrite(LEDG, 255 - c.g);
    analogWrite(LEDB, 255 - c.b);
    on_ = true;
    off_at_ = millis() + duration_ms;
  }
  void Off() {
    digitalWrite(LEDR, HIGH);
    digitalWrite(LEDG, HIGH);
    digitalWrite(LEDB, HIGH);
    on_ = false;
  }
  void Tick() {
    if (on_ && static_cast<int32_t>(millis() - off_at_) >= 0) Off();
  }

 private:
  bool on_ = false;
  uint32_t off_at_ = 0;
};

}  // namespace kws_board

#endif  // KWS_BOARD_LED_H_
