#include "fft.h"

#include <math.h>

namespace kws {

constexpr int RealFft512::kSize;
constexpr int RealFft512::kNumBins;
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

void RealFft512::ComplexFft(float* z) const {
  // Stages with sub-transform size 4L; stage twiddle W_{4L}^{qj} is W_512^{qj*128/L}.
  for (int span = kHalf / 4; span > 1; span /= 4) {
    const int step = 2 * (kHalf / 4) / span;  // 128 / span, in units of W_512
    for (int base = 0; base < kHalf; base += 4 * span) {
      for (int j = 0; j < span; ++j) {
        float* a = z + 2 * (base + j);
        float* b = a + 2 * span;
        float* c = b + 2 * span;
        float* d = c + 2 * span;
        const float t0r = a[0] + c[0], t0i = a[1] + c[1];
        const float t1r = a[0] - c[0], t1i = a[1] - c[1];
        const float t2r = b[0] + d[0], t2i = b[1] + d[1];
        const float t3r = b[0] - d[0], t3i = b[1] - d[1];
        a[0] = t0r + t2r;
        a[1] = t0i + t2i;
        // y1 = t1 - i t3, y2 = t0 - t2, y3 = t1 + i t3, each times W^{qj}.
        const float y1r = t1r + t3i, y1i = t1i - t3r;
        const float y2r = t0r - t2r, y2i = t0i - t2i;
        const float y3r = t1r - t3i, y3i = t1i + t3r;
        const float* w1 = twiddle_ + 2 * (j * step);
        const float* w2 = twiddle_ + 2 * (2 * j * step);
        const float* w3 = twiddle_ + 2 * (3 * j * step);
        b[0] = y1r * w1[0] - y1i * w1[1];
        b[1] = y1r * w1[1] + y1i * w1[0];
        c[0] = y2r * w2[0] - y2i * w2[1];
        c[1] = y2r * w2[1] + y2i * w2[0];
        d[0] = y3r * w3[0] - y3i * w3[1];
        d[1] = y3r * w3[1] + y3i * w3[0];
      }
    }
  }
  // Last stage (span 1): all twiddles are 1, so no multiplies.
  for (float* a = z; a < z + 2 * kHalf; a += 8) {
    const float t0r = a[0] + a[4], t0i = a[1] + a[5];
    const float t1r = a[0] - a[4], t1i = a[1] - a[5];
    const float t2r = a[2] + a[6], t2i = a[3] + a[7];
    const float t3r = a[2] - a[6], t3i = a[3] - a[7];
    a[0] = t0r + t2r;
    a[1] = t0i + t2i;
    a[2] = t1r + t3i;
    a[3] = t1i - t3r;
    a[4] = t0r - t2r;
    a[5] = t0i - t2i;
    a[6] = t1r - t3i;
    a[7] = t1i + t3r;
  }
}

// With z[m] = x[2m] + i x[2m+1] and Z = FFT256(z):
//   E[k] = (Z[k] + conj Z[256-k]) / 2,  O[k] = (Z[k] - conj Z[256-k]) / 2i,
//   X[k] = E[k] + W^k O[k],  X[256-k] = conj(E[k] - W^k O[k]).
// emit(k, re, im) receives each X[k] once, k in [0, 256].
template <typename Emit>
void RealFft512::Split(const float* z, Emit emit) const {
  const float* z0 = z + 2 * digit_reversed_[0];
  emit(0, z0[0] + z0[1], 0.0f);
  emit(kHalf, z0[0] - z0[1], 0.0f);
  const float* zq = z + 2 * digit_reversed_[kHalf / 2];
  emit(kHalf / 2, zq[0], -zq[1]);
  for (int k = 1; k < kHalf / 2; ++k) {
    const float* p = z + 2 * digit_reversed_[k];
    const float* q = z + 2 * digit_reversed_[kHalf - k];
    const float er = 0.5f * (p[0] + q[0]);
    const float ei = 0.5f * (p[1] - q[1]);
    const float or_ = 0.5f * (p[1] + q[1]);
    const float oi = -0.5f * (p[0] - q[0]);
    const float* w = twiddle_ + 2 * k;
    const float wor = w[0] * or_ - w[1] * oi;
    const float woi = w[0] * oi + w[1] * or_;
    emit(k, er + wor, ei + woi);
    emit(kHalf - k, er - wor, woi - ei);
  }
}

void RealFft512::Transform(float* data, float* re, float* im) const {
  ComplexFft(data);
  Split(data, [re, im](int k, float r, float i) {
    re[k] = r;
    im[k] = i;
  });
}

void RealFft512::PowerSpectrum(float* data, float* power) const {
  ComplexFft(data);
  Split(data, [power](int k, float r, float i) { power[k] = r * r + i * i; });
}

}  // namespace kws
