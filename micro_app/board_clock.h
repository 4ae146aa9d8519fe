// kws::Clock for the board: microseconds from the Cortex-M4 DWT cycle counter
// (micros() where it is unavailable). Needs KWS_USE_DWT (board_options.h).
#ifndef KWS_BOARD_CLOCK_H_
#define KWS_BOARD_CLOCK_H_

#include <Arduino.h>

#include "src/app_interfaces.h"

namespace kws_board {

// Cycle-exact and cheap; the 64-bit accumulation keeps differences right
// across the 67 s CYCCNT wrap (as long as it is read at least once per wrap,
// which the loop does).
class BoardClock : public kws::Clock {
 public:
  void Begin() {
#if KWS_USE_DWT && defined(DWT) && defined(CoreDebug)
    CoreDebug->DEMCR |= CoreDebug_DEMCR_TRCENA_Msk;
    DWT->CYCCNT = 0;
    DWT->CTRL |= DWT_CTRL_CYCCNTENA_Msk;
    const uint32_t c0 = DWT->CYCCNT;
    delayMicroseconds(10);
    cycles_per_us_ = SystemCoreClock / 1000000u;
    use_dwt_ = DWT->CYCCNT != c0 && cycles_per_us_ > 0;
    last_ = DWT->CYCCNT;
#endif
  }
  uint32_t NowMicros() override {
#if KWS_USE_DWT && defined(DWT) && defined(CoreDebug)
    if (use_dwt_) {
      const uint32_t c = DWT->CYCCNT;
      cycles_ += static_cast<uint32_t>(c - last_);
      last_ = c;
      return static_cast<uint32_t>(cycles_ / cycles_per_us_);
    }
#endif
    return micros();
  }
  bool uses_dwt() const { return use_dwt_; }

 private:
  bool use_dwt_ = false;
  uint32_t cycles_per_us_ = 0;
  uint32_t last_ = 0;
  uint64_t cycles_ = 0;
};

}  // namespace kws_board

#endif  // KWS_BOARD_CLOCK_H_
