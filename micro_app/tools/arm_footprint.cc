// Not part of the app: compiled by cross_compile.sh only, to (1) prove the
// generated kws_settings.h and its glue compile for the Cortex-M4 next to the
// core, and (2) measure the core's static RAM: each global below is one
// object the board sketch would define, and `arm-none-eabi-nm -S` prints its
// size with the target's real struct layout.
#include "kws_app.h"
#include "state_copy.h"
#include "kws_settings.h"

kws::KwsApp g_footprint_app;                 // front-end + window + recogniser + stats + buffers
kws::MfccFrontend g_footprint_frontend;      // of which: the front-end alone
kws::FeatureWindow g_footprint_window;       // of which: the 101x32 window
kws::Recognizer g_footprint_recognizer;      // of which: the recogniser
kws::AudioRingBuffer g_footprint_ring;       // ring bookkeeping (storage is the sketch's)
kws::StateCopyPlan g_footprint_state_copy;  // the step runner's copy plan (board_runner.h)

// The tables in flash: a function that hands them out keeps them referenced,
// so they land in this object's .rodata where nm can add them up.
kws::FrontendTables FootprintTables() { return kws::SettingsFrontendTables(); }
kws::AppConfig FootprintConfig() { return kws::SettingsAppConfig(); }
