// Structural dimensions the portable core is compiled for.
//
// These mirror kws_tf/features.py. They live here (and not only in the
// generated kws_settings.h) because the core sizes its static buffers with
// them while the ctypes library must work without any generated header.
// Nothing can drift silently: MfccFrontend::Init() rejects tables generated
// for other dimensions, kws_settings.h users static_assert equality, and
// tests/test_micro_core.py compares kws_core_dims() with features.py.
#ifndef KWS_DIMS_H_
#define KWS_DIMS_H_

namespace kws {
namespace dims {

constexpr int kSampleRate = 16000;
constexpr int kWindowSamples = 400;  // 25 ms
constexpr int kHopSamples = 160;     // 10 ms
constexpr int kFftSize = 512;
constexpr int kNumFftBins = kFftSize / 2 + 1;
// The front-end profile (kws_tf/frontends.py), chosen when the core is compiled:
// MFCC (default) or, with -DKWS_FRONTEND_LOGMEL, the 40 log-mel bands without
// the DCT (BC-ResNet's input). kNumMfcc is the features per frame either way.
#ifdef KWS_FRONTEND_LOGMEL
constexpr bool kFrontEndDct = false;
constexpr int kNumMel = 40;
constexpr int kNumMfcc = kNumMel;  // the log-mel bands are the features
#else
constexpr bool kFrontEndDct = true;
constexpr int kNumMel = 32;
constexpr int kNumMfcc = 32;
#endif
constexpr int kNumFrames = 101;  // frames in the 1 s model input
constexpr int kFeatureBytes = kNumFrames * kNumMfcc;
// Upper bound on model classes (buffers only; the real count comes from config).
constexpr int kMaxClasses = 16;

}  // namespace dims
}  // namespace kws

#endif  // KWS_DIMS_H_
