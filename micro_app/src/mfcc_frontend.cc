#include "mfcc_frontend.h"

#include <math.h>
#include <string.h>

namespace kws {

static_assert(dims::kFftSize == RealFft512::kSize, "front-end FFT size");
static_assert(dims::kWindowSamples <= dims::kFftSize, "window fits the FFT");
static_assert(dims::kWindowSamples % 2 == 0, "samples are packed in pairs");

int8_t QuantizeInput(float normalized, float inv_scale, int32_t zero_point) {
  // volatile: stop the compiler fusing x * s + 0.5 into one FMA (Cortex-M4F
  // has VFMA and GNU dialects allow contraction). numpy rounds the product
  // and the sum separately; so must we, or ties land on different integers.
  volatile float scaled = normalized * inv_scale;
  float q = floorf(scaled + 0.5f) + static_cast<float>(zero_point);
  if (!(q >= -128.0f)) q = -128.0f;  // also catches NaN
  if (q > 127.0f) q = 127.0f;
  return static_cast<int8_t>(q);
}

bool MfccFrontend::Init(const FrontendTables& t) {
  ready_ = false;
  if (t.sample_rate != dims::kSampleRate || t.window_samples != dims::kWindowSamples ||
      t.hop_samples != dims::kHopSamples || t.fft_size != dims::kFftSize ||
      t.num_mel != dims::kNumMel || t.num_mfcc != dims::kNumMfcc) {
    return false;
  }
  if (!t.window || !t.mel_start || !t.mel_length || !t.mel_offset || !t.mel_weights ||
      !t.dct || !t.norm_mean || !t.norm_inv_std) {
    return false;
  }
  for (int m = 0; m < dims::kNumMel; ++m) {
    if (t.mel_start[m] + t.mel_length[m] > dims::kNumFftBins ||
        t.mel_offset[m] + t.mel_length[m] > t.mel_weight_count) {
      return false;
    }
  }
  t_ = t;
  mel_scale_ = t.pcm_scale * t.pcm_scale;
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
  // Window the raw int16 values; the PCM scale is applied to the 32 mel sums
  // instead (power scales by pcm_scale^2), which saves 400 multiplies.
  const float* w = t_.window;
  for (int i = 0; i < dims::kWindowSamples; ++i) {
    fft_buffer_[i] = static_cast<float>(window[i]) * w[i];
  }
  memset(fft_buffer_ + dims::kWindowSamples, 0,
         (dims::kFftSize - dims::kWindowSamples) * sizeof(float));
  fft_.PowerSpectrum(fft_buffer_, power_);

  for (int m = 0; m < dims::kNumMel; ++m) {
    const float* p = power_ + t_.mel_start[m];
    const float* wt = t_.mel_weights + t_.mel_offset[m];
    const int len = t_.mel_length[m];
    float acc = 0.0f;
    for (int i = 0; i < len; ++i) acc += p[i] * wt[i];
    log_mel_[m] = logf(acc * mel_scale_ + t_.log_offset);
  }

  // Register accumulator per coefficient; the matrix is [mel][mfcc] so the
  // reads stride by NUM_MFCC, which Cortex-M addressing does for free.
  for (int c = 0; c < dims::kNumMfcc; ++c) {
    const float* d = t_.dct + c;
    float acc = 0.0f;
    for (int m = 0; m < dims::kNumMel; ++m) acc += log_mel_[m] * d[m * dims::kNumMfcc];
    mfcc_[c] = acc;
    const float normalized = (acc - t_.norm_mean[c]) * t_.norm_inv_std[c];
    features_[c] = QuantizeInput(normalized, t_.input_inv_scale, t_.input_zero_point);
  }
  ++frames_produced_;
}

}  // namespace kws
