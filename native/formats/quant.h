// The one table of tensor formats: block size, bytes per block, dequantize,
// the activation ("dot") type its products use, and the dot product itself.
// The table is constant and holds the scalar reference implementations (quant.cc); the
// CPU backend has its own constant table of SIMD kernels (backends/cpu/kernels.h) that
// falls back to these. Block layouts: quant_blocks.h.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace nla {

// Numeric ids are the GGUF / ggml ids (ggml_type).
enum class GgmlType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
  IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22, IQ4_XS = 23,
  I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30,
  TQ1_0 = 34, TQ2_0 = 35, MXFP4 = 39,
};

// Dequantize n values (n a multiple of block_size) from src to dst.
using ToFloatFn = void (*)(const void* src, float* dst, int64_t n);
// Quantize n floats into this format (used for activations: Q8_0, Q8_K, F16, BF16, F32).
using FromFloatFn = void (*)(const float* src, void* dst, int64_t n);
// Dot product of n values: x in this format, y in vec_dot_type. Result in *s.
using VecDotFn = void (*)(int64_t n, float* s, const void* x, const void* y);

struct TypeTraits {
  GgmlType type;
  const char* name;        // "q4_K", "f16", ... (ggml's spelling)
  int64_t block_size;      // values per block
  size_t type_size;        // bytes per block
  bool supported;          // false: the engine refuses tensors of this type
  ToFloatFn to_float;      // null when unsupported
  FromFloatFn from_float;  // null when this type is never an activation type
  GgmlType vec_dot_type;   // type activations are quantized to for products with this type
  VecDotFn vec_dot;        // null when unsupported
};

// Traits of a type id read from a file. Unknown ids return a traits object with
// supported=false and name "type<N>" (so errors can name it); never throws.
const TypeTraits& type_traits(uint32_t type_id);
inline const TypeTraits& type_traits(GgmlType t) { return type_traits(static_cast<uint32_t>(t)); }

// Bytes of one row of n values (n must be a multiple of the block size; throws nla::Error otherwise).
size_t row_size(GgmlType t, int64_t n);

// Half / bfloat16 conversions (round-to-nearest-even, as ggml does).
float fp16_to_fp32(uint16_t h);
uint16_t fp32_to_fp16(float f);
float bf16_to_fp32(uint16_t h);
uint16_t fp32_to_bf16(float f);

}  // namespace nla
