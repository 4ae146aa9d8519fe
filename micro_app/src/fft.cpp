#include "fft.h"

#include <math.h>

// The Arduino mbed core compiles sketches with -Os, which costs this per-frame
// hot path ~17% more instructions (measured: 35.8k vs 30.5k Thumb-2
// instructions per MFCC frame under qemu-arm). Optimise these two files for
// speed whatever the sketch's flags; they are ~2 KB of code.
#if defined(__GNUC__) && !defined(__clang__) && defined(__OPTIMIZE_SIZE__)
#pragma GCC optimize("O2")
#endif

namespace kws {

constexpr int RealFft512::kSize;
constexpr int RealFft512::kNumBins;
constexpr int RealFft512::kMinInput;
constexpr int RealFft512::kHalf;
constexpr int RealFft512::kNumTwiddles;

void RealFft512::Init() {
  const double kPi = 3.14159265358979323846;
  for (int n = 0; n < kNumTwiddles; ++n) {
    const double angle = 2.0 * kPi * n / kSize;
    twiddle_[2 * n] = static_cast<float>(cos(angle));
    twiddle_[2 * n + 1] = static_cast<float>(-sin(angle));
  }
  // 256 = 4^4: the DIF output for frequency k sits at k's base-4 digits
  // reversed.
  for (int k = 0; k < kHalf; ++k) {
    int r = 0;
    for (int d = 0, v = k; d < 4; ++d, v >>= 2) r = (r << 2) | (v & 3);
    digit_reversed_[k] = static_cast<uint8_t>(r);
  }
}

// One radix-4 DIF butterfly on a, b, c, d (complex, interleaved), with the
// outputs q = 1, 2, 3 multiplied by the twiddles w1, w2, w3.
//   y0 = t0 + t2, y1 = t1 - i t3, y2 = t0 - t2, y3 = t1 + i t3,
//   t0 = a + c, t1 = a - c, t2 = b + d, t3 = b - d.
static inline void Butterfly(float* a, float* b, float* c, float* d, const float* w1,
                             const float* w2, const float* w3) {
  const float t0r = a[0] + c[0], t0i = a[1] + c[1];
  const float t1r = a[0] - c[0], t1i = a[1] - c[1];
  const float t2r = b[0] + d[0], t2i = b[1] + d[1];
  const float t3r = b[0] - d[0], t3i = b[1] - d[1];
  a[0] = t0r + t2r;
  a[1] = t0i + t2i;
  const float y1r = t1r + t3i, y1i = t1i - t3r;
  const float y2r = t0r - t2r, y2i = t0i - t2i;
  const float y3r = t1r - t3i, y3i = t1i + t3r;
  b[0] = y1r * w1[0] - y1i * w1[1];
  b[1] = y1r * w1[1] + y1i * w1[0];
  c[0] = y2r * w2[0] - y2i * w2[1];
  c[1] = y2r * w2[1] + y2i * w2[0];
  d[0] = y3r * w3[0] - y3i * w3[1];
  d[1] = y3r * w3[1] + y3i * w3[0];
}

// Same with all twiddles 1 (position 0 of every group, and the last stage).
static inline void ButterflyNoTwiddle(float* a, float* b, float* c, float* d) {
  const float t0r = a[0] + c[0], t0i = a[1] + c[1];
  const float t1r = a[0] - c[0], t1i = a[1] - c[1];
  const float t2r = b[0] + d[0], t2i = b[1] + d[1];
  const float t3r = b[0] - d[0], t3i = b[1] - d[1];
  a[0] = t0r + t2r;
  a[1] = t0i + t2i;
  b[0] = t1r + t3i;
  b[1] = t1i - t3r;
  c[0] = t0r - t2r;
  c[1] = t0i - t2i;
  d[0] = t1r - t3i;
  d[1] = t1i + t3r;
}

// Stage 1 (span 64) reading its input through load(n, &re, &im) (samples
// 2n and 2n+1) instead of from z. Complex inputs at or beyond count/2 are
// zero: for those positions the d leg (index j + 192) is skipped.
template <typename Load>
void RealFft512::FirstStage(Load load, int count, float* z) const {
  constexpr int kSpan = kHalf / 4;
  const int with_d = count / 2 - 3 * kSpan;  // positions whose d leg is nonzero
  for (int j = 0; j < kSpan; ++j) {
    float* a = z + 2 * j;
    float* b = a + 2 * kSpan;
    float* c = b + 2 * kSpan;
    float* d = c + 2 * kSpan;
    load(j, a);
    load(j + kSpan, b);
    load(j + 2 * kSpan, c);
    if (j < with_d) {
      load(j + 3 * kSpan, d);
    } else {
      d[0] = 0.0f;
      d[1] = 0.0f;
    }
    if (j == 0) {
      ButterflyNoTwiddle(a, b, c, d);
    } else {
      // W_256^{qj} = W_512^{2qj}.
      Butterfly(a, b, c, d, twiddle_ + 4 * j, twiddle_ + 8 * j, twiddle_ + 12 * j);
    }
  }
}

void RealFft512::LaterStages(float* z) const {
  for (int span = kHalf / 16; span > 1; span /= 4) {
    const int step = 2 * (kHalf / 4) / span;  // W_{4 span}^{qj} = W_512^{qj * step}
    for (float* a = z; a < z + 2 * kHalf; a += 8 * span) {
      ButterflyNoTwiddle(a, a + 2 * span, a + 4 * span, a + 6 * span);
    }
    for (int j = 1; j < span; ++j) {
      const float* w1 = twiddle_ + 2 * (j * step);
      const float* w2 = twiddle_ + 2 * (2 * j * step);
      const float* w3 = twiddle_ + 2 * (3 * j * step);
      for (float* a = z + 2 * j; a < z + 2 * kHalf; a += 8 * span) {
        Butterfly(a, a + 2 * span, a + 4 * span, a + 6 * span, w1, w2, w3);
      }
    }
  }
  for (float* a = z; a < z + 2 * kHalf; a += 8) ButterflyNoTwiddle(a, a + 2, a + 4, a + 6);
}

// With z[m] = x[2m] + i x[2m+1] and Z = FFT256(z):
//   2E[k] = Z[k] + conj Z[256-k],  2O[k] = -i (Z[k] - conj Z[256-k]),
//   X[k] = E[k] + W^k O[k],  X[256-k] = conj(E[k] - W^k O[k]).
// emit(k, re, im) receives 2 X[k] once for each k in [0, 256]: the factor 2
// is left for the caller, who can usually fold it in for free.
template <typename Emit>
void RealFft512::Split(const float* z, Emit emit) const {
  const float* z0 = z + 2 * digit_reversed_[0];
  emit(0, 2.0f * (z0[0] + z0[1]), 0.0f);
  emit(kHalf, 2.0f * (z0[0] - z0[1]), 0.0f);
  const float* zq = z + 2 * digit_reversed_[kHalf / 2];
  emit(kHalf / 2, 2.0f * zq[0], -2.0f * zq[1]);
  for (int k = 1; k < kHalf / 2; ++k) {
    const float* p = z + 2 * digit_reversed_[k];
    const float* q = z + 2 * digit_reversed_[kHalf - k];
    const float er = p[0] + q[0];
    const float ei = p[1] - q[1];
    const float or_ = p[1] + q[1];
    const float oi = q[0] - p[0];
    const float* w = twiddle_ + 2 * k;
    const float wor = w[0] * or_ - w[1] * oi;
    const float woi = w[0] * oi + w[1] * or_;
    emit(k, er + wor, ei + woi);
    emit(kHalf - k, er - wor, woi - ei);
  }
}

void RealFft512::Transform(const float* x, float* work, float* re, float* im) const {
  FirstStage([x](int m, float* out) { out[0] = x[2 * m]; out[1] = x[2 * m + 1]; }, kSize, work);
  LaterStages(work);
  Split(work, [re, im](int k, float r, float i) {
    re[k] = 0.5f * r;
    im[k] = 0.5f * i;
  });
}

void RealFft512::PowerSpectrum(const float* x, float* work, float* power) const {
  FirstStage([x](int m, float* out) { out[0] = x[2 * m]; out[1] = x[2 * m + 1]; }, kSize, work);
  LaterStages(work);
  Split(work, [power](int k, float r, float i) { power[k] = 0.25f * (r * r + i * i); });
}

void RealFft512::PowerSpectrumTimes4(const int16_t* samples, const float* window, int count,
                                     float* work, float* power4) const {
  FirstStage(
      [samples, window](int m, float* out) {
        out[0] = static_cast<float>(samples[2 * m]) * window[2 * m];
        out[1] = static_cast<float>(samples[2 * m + 1]) * window[2 * m + 1];
      },
      count, work);
  LaterStages(work);
  Split(work, [power4](int k, float r, float i) { power4[k] = r * r + i * i; });
}

}  // namespace kws
