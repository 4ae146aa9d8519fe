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
struct Model { uint32_t version() const { return 3; } };
inline const Model* GetModel(const void*) { static Model m; return &m; }
class MicroOpResolver { public: virtual ~MicroOpResolver() {} };
// The windowed model only: (1, 1, 101, 32) int8 in, 12 int8 scores out.
class MicroInterpreter {
 public:
  MicroInterpreter(const Model*, const MicroOpResolver&, uint8_t* arena, size_t size) : size_(size) { (void)arena; }
  TfLiteStatus AllocateTensors();
  TfLiteStatus Invoke();
  size_t inputs_size() const { return 1; }
  size_t outputs_size() const { return 1; }
  TfLiteTensor* input(size_t i) { return i == 0 ? &in_ : nullptr; }
  TfLiteTensor* output(size_t i) { return i == 0 ? &out_ : nullptr; }
  size_t arena_used_bytes() const { return used_; }
 private:
  size_t size_, used_ = 0;
  TfLiteTensor in_, out_;
  TfLiteIntArray in_dims_, out_dims_;
  int8_t in_data_[101 * 32], out_data_[12];
};
}  // namespace tflite
