#include "mfcc_frontend.h"

#include <math.h>
#include <string.h>

// The Arduino mbed core compiles sketches with -Os, which costs this per-frame
// hot path ~17% more instructions (measured: 35.8k vs 30.5k Thumb-2
// instructions per MFCC frame under qemu-arm). Optimise these two files for
// speed whatever the sketch's flags; they are ~2 KB of code.
#if defined(__GNUC__) && !defined(__clang__) && defined(__OPTIMIZE_SIZE__)
#pragma GCC optimize("O2")
#endif

namespace kws {

static_assert(dims::kFftSize == RealFft512::kSize, "front-end FFT size");
static_assert(dims::kWindowSamples <= dims::kFftSize, "window fits the FFT");
static_assert(dims::kWindowSamples % 2 == 0, "samples are packed in pairs");
static_assert(dims::kWindowSamples >= RealFft512::kMinInput, "window long enough for the FFT");
static_assert(dims::kNumMel % 2 == 0 && dims::kNumMfcc % 4 == 0, "DCT loop blocking");
static_assert(dims::kFrontEndDct || dims::kNumMfcc == dims::kNumMel, "log-mel: the bands are the features");

int8_t QuantizeInput(float normalized, float inv_scale, int32_t zero_point) {
  // volatile: stop the compiler fusing x * s + 0.5 into one FMA (Cortex-M4F
  // has VFMA and GNU dialects allow contraction). numpy rounds the product
  // and the sum separately; so must we, or ties land on different integers.
  volatile float scaled = normalized * inv_scale;
  float y = scaled + 0.5f;
  // Clamp before converting, so the int conversion below is always defined;
  // the bounds keep every value that can still land inside [-128, 127].
  if (!(y >= -1024.0f)) y = -1024.0f;  // also catches NaN
  if (y > 1024.0f) y = 1024.0f;
  // floor without a libm call: truncate, then step down for negative fractions.
  int32_t q = static_cast<int32_t>(y);
  if (static_cast<float>(q) > y) --q;
  q += zero_point;
  if (q < -128) q = -128;
  if (q > 127) q = 127;
  return static_cast<int8_t>(q);
}

// True if the DCT matrix has the DCT-II symmetry D[N-1-m][c] = (-1)^c D[m][c]
// exactly, which lets ComputeFrame do half the multiplies. Checked on the
// actual table, so any other matrix still gets the plain product.
static bool HasDctSymmetry(const float* dct) {
  for (int m = 0; m < dims::kNumMel / 2; ++m) {
    const float* row = dct + m * dims::kNumMfcc;
    const float* mirror = dct + (dims::kNumMel - 1 - m) * dims::kNumMfcc;
    for (int c = 0; c < dims::kNumMfcc; ++c) {
      if (mirror[c] != ((c & 1) ? -row[c] : row[c])) return false;
    }
  }
  return true;
}

bool MfccFrontend::Init(const FrontendTables& t) {
  ready_ = false;
  if (t.sample_rate != dims::kSampleRate || t.window_samples != dims::kWindowSamples ||
      t.hop_samples != dims::kHopSamples || t.fft_size != dims::kFftSize ||
      t.num_mel != dims::kNumMel || t.num_mfcc != dims::kNumMfcc) {
    return false;
  }
  if (t.input_zero_point < -128 || t.input_zero_point > 127 || !(t.input_inv_scale > 0.0f)) {
    return false;
  }
  if (!t.window || !t.mel_start || !t.mel_length || !t.mel_offset || !t.mel_weights ||
      (dims::kFrontEndDct && !t.dct) || !t.norm_mean || !t.norm_inv_std) {
    return false;
  }
  for (int m = 0; m < dims::kNumMel; ++m) {
    if (t.mel_start[m] + t.mel_length[m] > dims::kNumFftBins ||
        t.mel_offset[m] + t.mel_length[m] > t.mel_weight_count) {
      return false;
    }
  }
  t_ = t;
  // Power of the int16 frame -> power of the float frame (pcm_scale^2), and
  // the FFT's 4|X|^2 -> |X|^2 (1/4): both folded into the 32 mel sums.
  mel_scale_ = t.pcm_scale * t.pcm_scale * 0.25f;
  dct_symmetric_ = dims::kFrontEndDct && HasDctSymmetry(t.dct);
  fft_.Init();
  Reset();
  ready_ = true;
  return true;
}

void MfccFrontend::Reset() {
  memset(history_, 0, sizeof(history_));
  fill_ = dims::kWindowSamples / 2;
  frames_produced_ = 0;
  memset(mfcc_, 0, sizeof(mfcc_));
  memset(features_, 0, sizeof(features_));
}

int MfccFrontend::FeedSamples(const int16_t* samples, int n, FrameSink* sink) {
  if (!ready_) return 0;
  int produced = 0;
  while (n > 0) {
    int take = dims::kWindowSamples - fill_;
    if (take > n) take = n;
    memcpy(history_ + fill_, samples, take * sizeof(int16_t));
    fill_ += take;
    samples += take;
    n -= take;
    if (fill_ == dims::kWindowSamples) {
      ComputeFrame(history_);
      ++produced;
      if (sink) sink->OnFrame(features_, mfcc_);
      // Keep the overlap for the next frame: a 480-byte move per 10 ms is
      // cheaper than wrapping indices in the windowing loop.
      constexpr int kKeep = dims::kWindowSamples - dims::kHopSamples;
      memmove(history_, history_ + dims::kHopSamples, kKeep * sizeof(int16_t));
      fill_ = kKeep;
    }
  }
  return produced;
}

void MfccFrontend::ComputeFrame(const int16_t* window) {
  if (!ready_) return;
  // The FFT windows the raw int16 values itself (the PCM scale is folded into
  // mel_scale_), so the windowed frame is never stored.
  fft_.PowerSpectrumTimes4(window, t_.window, dims::kWindowSamples, fft_buffer_, power_);

  for (int m = 0; m < dims::kNumMel; ++m) {
    const float* p = power_ + t_.mel_start[m];
    const float* wt = t_.mel_weights + t_.mel_offset[m];
    const int len = t_.mel_length[m];
    // Two accumulators: halves the loop overhead and the add dependency chain.
    float acc0 = 0.0f, acc1 = 0.0f;
    int i = 0;
    for (; i + 1 < len; i += 2) {
      acc0 += p[i] * wt[i];
      acc1 += p[i + 1] * wt[i + 1];
    }
    if (i < len) acc0 += p[i] * wt[i];
    log_mel_[m] = logf((acc0 + acc1) * mel_scale_ + t_.log_offset);
  }

  // DCT, four coefficients per pass so each log-mel value is loaded once per
  // four multiplies and the matrix row is read contiguously. The log-mel
  // profile has none: its features are the bands themselves.
  constexpr int kM = dims::kNumMfcc;
  const float* dct = t_.dct;
  if (!dims::kFrontEndDct) {
    memcpy(mfcc_, log_mel_, sizeof(mfcc_));
  } else if (dct_symmetric_) {
    // Even coefficients see L[m] + L[N-1-m], odd ones L[m] - L[N-1-m]:
    // 16 instead of 32 terms per coefficient.
    float sum[dims::kNumMel / 2], diff[dims::kNumMel / 2];
    for (int m = 0; m < dims::kNumMel / 2; ++m) {
      sum[m] = log_mel_[m] + log_mel_[dims::kNumMel - 1 - m];
      diff[m] = log_mel_[m] - log_mel_[dims::kNumMel - 1 - m];
    }
    for (int c = 0; c < kM; c += 4) {
      float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
      const float* d = dct + c;
      for (int m = 0; m < dims::kNumMel / 2; ++m, d += kM) {
        a0 += sum[m] * d[0];
        a1 += diff[m] * d[1];
        a2 += sum[m] * d[2];
        a3 += diff[m] * d[3];
      }
      mfcc_[c] = a0;
      mfcc_[c + 1] = a1;
      mfcc_[c + 2] = a2;
      mfcc_[c + 3] = a3;
    }
  } else {
    for (int c = 0; c < kM; c += 4) {
      float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
      const float* d = dct + c;
      for (int m = 0; m < dims::kNumMel; ++m, d += kM) {
        const float l = log_mel_[m];
        a0 += l * d[0];
        a1 += l * d[1];
        a2 += l * d[2];
        a3 += l * d[3];
      }
      mfcc_[c] = a0;
      mfcc_[c + 1] = a1;
      mfcc_[c + 2] = a2;
      mfcc_[c + 3] = a3;
    }
  }

  for (int c = 0; c < kM; ++c) {
    const float normalized = (mfcc_[c] - t_.norm_mean[c]) * t_.norm_inv_std[c];
    features_[c] = QuantizeInput(normalized, t_.input_inv_scale, t_.input_zero_point);
  }
  ++frames_produced_;
}

}  // namespace kws
