#include "output_scores.h"

#include <math.h>

#include "kws_dims.h"

namespace kws {

static uint8_t ToScore(float p) {
  float s = p * 255.0f + 0.5f;
  if (!(s >= 0.0f)) s = 0.0f;
  if (s > 255.0f) s = 255.0f;
  return static_cast<uint8_t>(s);
}

void ScoresFromOutput(const int8_t* output, int n, const OutputQuantization& q,
                      uint8_t* scores) {
  if (n > dims::kMaxClasses) n = dims::kMaxClasses;
  float v[dims::kMaxClasses];
  for (int i = 0; i < n; ++i) v[i] = (static_cast<float>(output[i]) - q.zero_point) * q.scale;
  if (!q.is_logits) {
    for (int i = 0; i < n; ++i) scores[i] = ToScore(v[i]);
    return;
  }
  if (q.temperature > 0.0f && q.temperature != 1.0f) {
    const float inv_t = 1.0f / q.temperature;
    for (int i = 0; i < n; ++i) v[i] *= inv_t;
  }
  float top = v[0];
  for (int i = 1; i < n; ++i) top = v[i] > top ? v[i] : top;
  float sum = 0.0f;
  for (int i = 0; i < n; ++i) {
    v[i] = expf(v[i] - top);  // shifted: never overflows
    sum += v[i];
  }
  const float inv = 1.0f / sum;
  for (int i = 0; i < n; ++i) scores[i] = ToScore(v[i] * inv);
}

}  // namespace kws
