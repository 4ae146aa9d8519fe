// Model output (int8) -> recogniser scores (0..255 per class).
//
// SparkNet ends in a linear layer, so an exported model may output logits
// (softmax here, in float, 12 expf per inference) or, if export appended a
// softmax, probabilities. Either way the recogniser sees round(p * 255).
// Logits go through softmax(z / temperature): a model trained with cross-entropy
// puts its confident mistakes and its hits alike at 255, where no threshold can
// part them; a temperature above 1 spreads them out again (export chooses it
// with the recogniser's operating point).
#ifndef KWS_OUTPUT_SCORES_H_
#define KWS_OUTPUT_SCORES_H_

#include <stdint.h>

namespace kws {

struct OutputQuantization {
  float scale = 1.0f / 256.0f;  // TFLM int8 softmax convention
  int32_t zero_point = -128;
  bool is_logits = false;  // true: apply softmax to the dequantised values
  float temperature = 1.0f;  // logits only: scores = softmax(logits / temperature)
};

// n <= dims::kMaxClasses.
void ScoresFromOutput(const int8_t* output, int n, const OutputQuantization& q,
                      uint8_t* scores);

}  // namespace kws

#endif  // KWS_OUTPUT_SCORES_H_
