#pragma once
#include <stddef.h>
#include <stdint.h>
typedef enum { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;
typedef enum { kTfLiteNoType = 0, kTfLiteFloat32 = 1, kTfLiteInt8 = 9 } TfLiteType;
typedef struct { int size; int data[4]; } TfLiteIntArray;
typedef struct { float scale; int32_t zero_point; } TfLiteQuantizationParams;
typedef union { int8_t* int8; } TfLitePtrUnion;
typedef struct {
  TfLiteType type; TfLitePtrUnion data; TfLiteIntArray* dims;
  TfLiteQuantizationParams params; size_t bytes;
} TfLiteTensor;
namespace tflite {
// The stub tells the two models apart by the first byte of their data: 'S' = step model.
struct Model { bool step; uint32_t version() const { return 3; } };
inline const Model* GetModel(const void* data) {
  static Model m;
  m.step = static_cast<const char*>(data)[0] == 'S';
  return &m;
}
class MicroOpResolver { public: virtual ~MicroOpResolver() {} };
// The windowed model: (1, 1, 101, 32) int8 in, 12 int8 scores out. The step model: one
// (1, 1, 1, 32) frame + two state inputs, the scores + two state outputs (see stubs.cc).
class MicroInterpreter {
 public:
  MicroInterpreter(const Model* model, const MicroOpResolver&, uint8_t* arena, size_t size);
  TfLiteStatus AllocateTensors();
  TfLiteStatus Invoke();
  size_t inputs_size() const { return n_in_; }
  size_t outputs_size() const { return n_out_; }
  TfLiteTensor* input(size_t i) { return i < n_in_ ? &in_[i] : nullptr; }
  TfLiteTensor* output(size_t i) { return i < n_out_ ? &out_[i] : nullptr; }
  size_t arena_used_bytes() const { return used_; }
 private:
  TfLiteStatus InvokeStep();
  bool step_;
  size_t size_, used_ = 0, n_in_ = 0, n_out_ = 0;
  TfLiteTensor in_[3], out_[3];
  TfLiteIntArray in_dims_[3], out_dims_[3];
  int8_t in_data_[101 * 32], out_data_[12];
  int8_t state_a_[64], state_b_[64], state_c_[64];
  unsigned count_ = 0;
  bool corrupt_ = false;
};
}  // namespace tflite
