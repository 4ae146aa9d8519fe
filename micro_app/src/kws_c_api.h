/* C interface to the portable core, for Python (ctypes) and other hosts.
 *
 * Nothing here needs the generated kws_settings.h: every front-end constant is
 * passed in at create time (the Python side takes them from kws_tf.features),
 * so one shared library serves any model's normalisation and quantisation.
 * Objects are heap-allocated at create (host only); the calls after that do
 * not allocate. Host bridge only: not part of the board build.
 */
#ifndef KWS_C_API_H_
#define KWS_C_API_H_

#include <stdint.h>

#if defined(_WIN32)
#define KWS_API __declspec(dllexport)
#else
#define KWS_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* 2: kws_app_config.model_input / step_delay_frames, the reset callback of
 *    kws_app_create, kws_app_counters(app, out, n).
 * 3: score temperature (kws_scores_from_output's argument, kws_app_config.
 *    output_temperature), kws_recognizer_replay. */
#define KWS_C_API_VERSION 3

/* Fills out[0..n) with: sample rate, window, hop, fft size, fft bins, mel
 * bands, mfcc, frames per model input, max classes. Returns how many the
 * library knows (9), so callers can detect a stale library. */
KWS_API int32_t kws_core_dims(int32_t* out, int32_t n);
KWS_API int32_t kws_c_api_version(void);

/* ---------------------------------------------------------------- front-end */
typedef struct {
  int32_t sample_rate, window_samples, hop_samples, fft_size, num_mel, num_mfcc;
  const float* window;       /* [window_samples] */
  const uint16_t* mel_start; /* [num_mel] */
  const uint16_t* mel_length;
  const uint16_t* mel_offset;
  const float* mel_weights;  /* [mel_weight_count] */
  int32_t mel_weight_count;
  const float* dct;          /* [num_mel * num_mfcc], [mel][mfcc] */
  const float* norm_mean;    /* [num_mfcc] */
  const float* norm_inv_std; /* [num_mfcc] */
  float log_offset;
  float pcm_scale;
  float input_scale; /* the library uses 1.0f / input_scale, as the device does */
  int32_t input_zero_point;
} kws_frontend_params;

typedef struct kws_frontend kws_frontend;

/* Copies every array. NULL if the parameters do not fit the core. */
KWS_API kws_frontend* kws_frontend_create(const kws_frontend_params* params);
KWS_API void kws_frontend_destroy(kws_frontend* fe);
/* History back to WINDOW/2 zeros (centred framing, see mfcc_frontend.h). */
KWS_API void kws_frontend_reset(kws_frontend* fe);
/* Frames that feeding n more samples would produce. */
KWS_API int32_t kws_frontend_frames_for(const kws_frontend* fe, int32_t n);
/* Feeds n samples; frames go to out_features [max_frames][num_mfcc] (int8)
 * and, if not NULL, out_mfcc [max_frames][num_mfcc] (raw float MFCC).
 * Returns frames written, or -1 (nothing consumed) if max_frames is too small. */
KWS_API int32_t kws_frontend_feed(kws_frontend* fe, const int16_t* samples, int32_t n,
                                  int8_t* out_features, float* out_mfcc, int32_t max_frames);

/* --------------------------------------------------------------- recogniser */
typedef struct {
  int32_t average_window_ms, detection_threshold, suppression_ms, minimum_count;
  int32_t num_classes, silence_index, unknown_index;
} kws_recognizer_config;

typedef struct {
  int32_t found, label, score, is_new_command;
} kws_recognition;

KWS_API void kws_recognizer_default_config(kws_recognizer_config* out);

typedef struct kws_recognizer kws_recognizer;
KWS_API kws_recognizer* kws_recognizer_create(const kws_recognizer_config* config);
KWS_API void kws_recognizer_destroy(kws_recognizer* r);
KWS_API void kws_recognizer_reset(kws_recognizer* r);
/* scores: num_classes values 0..255. Returns 0, or -1 on bad arguments. */
KWS_API int32_t kws_recognizer_process(kws_recognizer* r, const uint8_t* scores,
                                       uint32_t time_ms, kws_recognition* out);

/* Feeds n results (scores [n][num_classes], times_ms [n]) in order; writes the
 * new commands (label, score, time) into out_* up to max_out and returns how many
 * there were (possibly more than max_out), or -1 on bad arguments. One call per
 * stream instead of one per result: what a threshold sweep replays. */
KWS_API int32_t kws_recognizer_replay(kws_recognizer* r, const uint8_t* scores,
                                      const uint32_t* times_ms, int32_t n, int32_t* out_labels,
                                      int32_t* out_scores, uint32_t* out_times_ms, int32_t max_out);

/* Model output -> 0..255 scores, exactly as the app does it (temperature:
 * logits only, softmax(logits / temperature); 1 = the plain softmax). */
KWS_API void kws_scores_from_output(const int8_t* output, int32_t n, float scale,
                                    int32_t zero_point, int32_t is_logits, float temperature,
                                    uint8_t* scores);

/* ---------------------------------------------------------------- whole app */
/* The model runner: fill output[num_classes] from input (model_input
 * KWS_MODEL_INPUT_WINDOW: [frames*mfcc], the 1 s window; KWS_MODEL_INPUT_FRAME:
 * [mfcc], the newest frame); return nonzero on success. */
typedef int32_t (*kws_run_fn)(void* user, const int8_t* input, int8_t* output);
/* Back to the model's initial state (a step model's state at its zero
 * points); called by kws_app_create, kws_app_reset and kws_app_self_test. */
typedef void (*kws_reset_fn)(void* user);
/* Receives each report line (KWS ..., BENCH ..., SELFTEST ..., ERROR ...). */
typedef void (*kws_report_fn)(void* user, const char* line);

#define KWS_MODEL_INPUT_WINDOW 0 /* kws::ModelInput::kWindow */
#define KWS_MODEL_INPUT_FRAME 1  /* kws::ModelInput::kFrame */

typedef struct {
  int32_t inference_every_frames; /* window mode */
  int32_t wait_for_full_window;
  int32_t bench_window;
  int32_t bench_report_every;
  int32_t selftest_tail_ms;
  int32_t model_input;       /* KWS_MODEL_INPUT_WINDOW or KWS_MODEL_INPUT_FRAME */
  int32_t step_delay_frames; /* frame mode: the step model's look-ahead */
  float output_scale;
  int32_t output_zero_point;
  int32_t output_is_logits;
  float output_temperature; /* logits only: softmax(logits / T) */
  uint32_t arena_bytes; /* reported as arena= in BENCH lines */
  kws_recognizer_config recognizer;
} kws_app_config;

KWS_API void kws_app_default_config(kws_app_config* out);

typedef struct kws_app kws_app;
/* labels: recognizer.num_classes strings (copied; may be NULL). reset and
 * report may be NULL. The clock is the host's monotonic clock, so BENCH
 * figures are host timings. */
KWS_API kws_app* kws_app_create(const kws_frontend_params* params, const kws_app_config* config,
                                const char* const* labels, kws_run_fn run, kws_reset_fn reset,
                                kws_report_fn report, void* user);
KWS_API void kws_app_destroy(kws_app* app);
KWS_API void kws_app_reset(kws_app* app);
/* Same as KwsApp::ProcessSamples: deterministic, chunking does not matter. */
KWS_API void kws_app_process(kws_app* app, const int16_t* samples, int32_t n);
KWS_API void kws_app_report_bench(kws_app* app);
/* Returns 1 on PASS, 0 on FAIL (the SELFTEST line goes to the reporter). */
KWS_API int32_t kws_app_self_test(kws_app* app, const int16_t* audio, int32_t n,
                                  const int32_t* expected, int32_t num_expected);
/* Counters into out[0..n): frames, inferences (model runs), audio time in
 * ms, invoke errors, recognitions (score vectors given to the recogniser:
 * model runs minus warm-up and failures). Returns how many exist (5). */
KWS_API int32_t kws_app_counters(const kws_app* app, uint32_t* out, int32_t n);
/* The last recognition and scores (num_classes values). */
KWS_API void kws_app_last(const kws_app* app, kws_recognition* out, uint8_t* scores);

#ifdef __cplusplus
}
#endif

#endif /* KWS_C_API_H_ */
