// Incremental MFCC front-end: one int8 feature frame per 10 ms hop.
//
// Definition (kws_tf/features.py is the source of truth; every number comes in
// through FrontendTables): newest WINDOW samples -> Hann window -> 512-point
// power spectrum -> sparse mel filterbank -> ln(mel + LOG_OFFSET) -> DCT (not in
// the log-mel profile, -DKWS_FRONTEND_LOGMEL: see kws_dims.h) ->
// (x - mean[c]) * inv_std[c] -> q = clamp(floor(x * inv_scale + 0.5) + zp).
// Float32 throughout; the Python reference computes the MFCC in float64, so
// raw MFCCs agree to float32 rounding, not bit for bit (see micro_app/NOTES.md).
//
// Framing. Python's clip frame t covers samples [t*HOP - WINDOW/2,
// t*HOP + WINDOW/2) with zeros outside the clip. Reset() pre-fills the history
// with WINDOW/2 zeros, so frame t is emitted once sample t*HOP + WINDOW/2 - 1
// has arrived: a clip followed by WINDOW/2 trailing zeros yields exactly
// 1 + samples/HOP frames, equal to features.mfcc_np() frame for frame. Each
// frame is computed once, from the newest WINDOW samples, when its last
// sample arrives; chunking of the input never changes the output.
#ifndef KWS_MFCC_FRONTEND_H_
#define KWS_MFCC_FRONTEND_H_

#include <stdint.h>

#include "fft.h"
#include "kws_dims.h"

namespace kws {

// Everything the front-end computes with. Pointers are not copied: on the
// board they point at the const arrays of the generated kws_settings.h
// (flash), on the host at arrays the caller keeps alive.
struct FrontendTables {
  // Dimensions the tables were generated for; Init() refuses any mismatch
  // with kws::dims rather than read past a buffer.
  int32_t sample_rate;
  int32_t window_samples;
  int32_t hop_samples;
  int32_t fft_size;
  int32_t num_mel;
  int32_t num_mfcc;

  const float* window;          // [window_samples] Hann window
  const uint16_t* mel_start;    // [num_mel] first FFT bin of each band
  const uint16_t* mel_length;   // [num_mel] bins in each band
  const uint16_t* mel_offset;   // [num_mel] index of the band's first weight
  const float* mel_weights;     // [mel_weight_count] concatenated band weights
  int32_t mel_weight_count;
  const float* dct;             // [num_mel * num_mfcc], row-major [mel][mfcc]; unused
                                // (may be null) in the log-mel profile (!dims::kFrontEndDct)
  const float* norm_mean;       // [num_mfcc]
  const float* norm_inv_std;    // [num_mfcc]
  float log_offset;             // ln(mel + log_offset)
  float pcm_scale;              // int16 -> float factor (1/32768)
  float input_inv_scale;        // float32(1 / input_scale) of the int8 model input
  int32_t input_zero_point;
};

// Receives each frame as it is produced. Non-virtual protected destructor:
// a virtual one would drag operator delete (the heap) into the board build.
class FrameSink {
 public:
  virtual void OnFrame(const int8_t* features, const float* mfcc) = 0;

 protected:
  ~FrameSink() = default;
};

class MfccFrontend {
 public:
  // Keeps a pointer to the arrays in `tables`. False (and unusable) if the
  // tables do not fit the compiled dimensions or index outside themselves.
  bool Init(const FrontendTables& tables);

  // Empties the history down to WINDOW/2 zeros (centred framing, see above).
  void Reset();

  // Accepts any number of samples. For every completed hop computes one frame
  // and, if sink is not null, passes it on before continuing. Returns the
  // number of frames produced by this call.
  int FeedSamples(const int16_t* samples, int n, FrameSink* sink);

  // Samples still needed before the next frame is produced (1..WINDOW).
  int samples_until_frame() const { return dims::kWindowSamples - fill_; }

  // The most recent frame: int8 model features and raw (unnormalised) MFCCs.
  const int8_t* features() const { return features_; }
  const float* mfcc() const { return mfcc_; }
  uint32_t frames_produced() const { return frames_produced_; }

  // Runs the frame computation on an explicit window of WINDOW samples
  // (for parity tests and benchmarks); updates features() and mfcc().
  void ComputeFrame(const int16_t* window);

 private:
  FrontendTables t_ = {};
  bool ready_ = false;
  float mel_scale_ = 0.0f;  // pcm_scale^2 / 4: applied to 32 mel sums, not 400 samples
  bool dct_symmetric_ = false;  // the table allows the half-size DCT
  RealFft512 fft_;
  int16_t history_[dims::kWindowSamples];
  int fill_ = 0;
  uint32_t frames_produced_ = 0;
  float fft_buffer_[dims::kFftSize];  // FFT work space
  float power_[dims::kNumFftBins];
  float log_mel_[dims::kNumMel];
  float mfcc_[dims::kNumMfcc];
  int8_t features_[dims::kNumMfcc];
};

// The device's int8 quantisation of one normalised value, exactly as
// features.quantize_np defines it (float32, floor(x + 0.5), then clamp).
int8_t QuantizeInput(float normalized, float inv_scale, int32_t zero_point);

}  // namespace kws

#endif  // KWS_MFCC_FRONTEND_H_
