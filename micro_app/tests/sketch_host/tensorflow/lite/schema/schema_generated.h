#pragma once
#define TFLITE_SCHEMA_VERSION (3)
