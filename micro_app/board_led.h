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

constexpr Rgb kOff = {0, 0, 0};
// While setup() runs (turned off once the microphone is listening). If it stays lit,
// setup hung: most likely a crash inside AllocateTensors (an arena slightly too small,
// README "Arena"); the last INFO line on Serial says which step it reached.
constexpr Rgb kSetupColour = {0, 0, 255};  // blue

// The RGB LED is active low (pin HIGH = dark) and is driven by PWM ONLY:
// analogWrite(pin, 255 - level) for every change, off included (255 = 100 % duty =
// the pin held high). Never digitalWrite, never pinMode. Why: in the Arduino mbed core
// for the Nano 33 BLE, the first analogWrite on a pin attaches an mbed PwmOut to it and
// the nRF52's PWM peripheral then drives the pin (PSEL); digitalWrite only changes the
// GPIO OUT register, which no longer reaches the pin, so an LED lit by analogWrite and
// "turned off" by digitalWrite stays lit and blink codes become unreadable. pinMode
// (OUTPUT) before the first analogWrite would drive the pin low (LED on) for a moment,
// and the PWM driver configures the pin itself. A board has to confirm that 100 %
// duty is steadily dark (micro_app/README.md, "Board: reasoned, not yet seen").
class Led {
 public:
  // Attaches PWM to the three pins, all dark.
  void Begin() { Off(); }
  void Set(const Rgb& c, uint32_t duration_ms) {
    Write(c);
    on_ = true;
    off_at_ = millis() + duration_ms;
  }
  void Off() {
    Write(kOff);
    on_ = false;
  }
  void Tick() {
    if (on_ && static_cast<int32_t>(millis() - off_at_) >= 0) Off();
  }
  // The analogWrite value for a colour level (active low).
  static constexpr int Duty(uint8_t level) { return 255 - level; }

 private:
  static void Write(const Rgb& c) {
    analogWrite(LEDR, Duty(c.r));
    analogWrite(LEDG, Duty(c.g));
    analogWrite(LEDB, Duty(c.b));
  }
  bool on_ = false;
  uint32_t off_at_ = 0;
};

}  // namespace kws_board

#endif  // KWS_BOARD_LED_H_
