// Op registration driven by the generated kws_settings.h, so the resolver can
// never drift from the exported model.
//
// KWS_ALL_MICRO_OPS (generated into kws_settings.h from kws_tf/tflite_tools.py
// MICRO_OPS) lists every op the exporter knows, as (flatbuffer op name,
// MicroMutableOpResolver method). RegisterModelOps() calls the method of each op
// whose name appears in kws::kOpNames (the model's op list, written by the
// exporter). The "is it used" test is a compile-time constant, so the calls of
// unused ops are dead code: the optimiser drops them and --gc-sections drops
// their kernels from flash.
//
// Include AFTER kws_settings.h (needs kws::kNumOps / kws::kOpNames).
#ifndef KWS_BOARD_OPS_H_
#define KWS_BOARD_OPS_H_

#ifndef KWS_ALL_MICRO_OPS
#error "kws_settings.h lacks KWS_ALL_MICRO_OPS: regenerate it with python -m kws_tf.export"
#endif

namespace kws {
namespace board {

constexpr bool StrEqual(const char* a, const char* b) {
  return *a == *b && (*a == '\0' || StrEqual(a + 1, b + 1));
}

// Is `name` in the model's op list (kws_settings.h kOpNames)?
constexpr bool ModelUsesOp(const char* name, int i = 0) {
  return i < kNumOps && (StrEqual(kOpNames[i], name) || ModelUsesOp(name, i + 1));
}

// How many entries of KWS_ALL_MICRO_OPS the model uses.
constexpr int CountRegistrableOps() {
  return 0
#define KWS_COUNT_OP_(NAME, METHOD) +(ModelUsesOp(NAME) ? 1 : 0)
      KWS_ALL_MICRO_OPS(KWS_COUNT_OP_)
#undef KWS_COUNT_OP_
      ;
}

constexpr bool OpNamesUnique(int i = 0, int j = 1) {
  return i >= kNumOps ? true
         : j >= kNumOps ? OpNamesUnique(i + 1, i + 2)
                        : (!StrEqual(kOpNames[i], kOpNames[j]) && OpNamesUnique(i, j + 1));
}

// Every op of the model is registrable (unique names, all known to the table).
constexpr bool AllModelOpsRegistrable() {
  return kNumOps > 0 && OpNamesUnique() && CountRegistrableOps() == kNumOps;
}

// Registers exactly the model's ops. Returns nullptr on success, else the name
// of the op whose registration failed. (TfLiteStatus kTfLiteOk == 0; compared as
// int so this header needs no TFLM include.)
template <typename Resolver>
const char* RegisterModelOps(Resolver* resolver) {
#define KWS_REGISTER_OP_(NAME, METHOD)                                          \
  {                                                                             \
    constexpr bool kUsed = ModelUsesOp(NAME);                                   \
    if (kUsed && static_cast<int>(resolver->METHOD()) != 0) return NAME;        \
  }
  KWS_ALL_MICRO_OPS(KWS_REGISTER_OP_)
#undef KWS_REGISTER_OP_
  return nullptr;
}

}  // namespace board
}  // namespace kws

#endif  // KWS_BOARD_OPS_H_
