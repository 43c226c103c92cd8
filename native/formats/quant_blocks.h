// The block layouts of the ggml quantization formats the engine computes with, declared once for every
// backend: the format table's reference kernels (formats/quant.cc), the CPU SIMD kernels
// (backends/cpu/kernels_x86.inc) and the CUDA kernels (backends/cuda/matmul.cu, which address bytes through
// sizeof/offsetof of these structs). Byte-compatible with ggml (llama.cpp v0.5.0): the sizes are checked
// below. Half-precision fields are raw IEEE binary16 bits (uint16_t). Plain C++: no host-only headers, so
// nvcc compiles it too.
#pragma once
#include <cstddef>
#include <cstdint>

namespace nla {
namespace blocks {

constexpr int QK = 32;     // values per block of the legacy formats
constexpr int QK_K = 256;  // values per super-block of the k-quants

struct BlockQ4_0 { uint16_t d; uint8_t qs[QK / 2]; };
struct BlockQ4_1 { uint16_t d, m; uint8_t qs[QK / 2]; };
struct BlockQ5_0 { uint16_t d; uint8_t qh[4]; uint8_t qs[QK / 2]; };
struct BlockQ5_1 { uint16_t d, m; uint8_t qh[4]; uint8_t qs[QK / 2]; };
struct BlockQ8_0 { uint16_t d; int8_t qs[QK]; };
struct BlockQ8_1 { uint16_t d, s; int8_t qs[QK]; };  // s = d * sum(qs)
// 6-bit scales and mins of the 8 sub-blocks packed in 12 bytes (see k4_scale_min in quant.cc).
struct BlockQ4_K { uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[QK_K / 2]; };
struct BlockQ5_K { uint16_t d, dmin; uint8_t scales[12]; uint8_t qh[QK_K / 8]; uint8_t qs[QK_K / 2]; };
struct BlockQ6_K { uint8_t ql[QK_K / 2]; uint8_t qh[QK_K / 4]; int8_t scales[QK_K / 16]; uint16_t d; };
// Activation super-block for k-quant products: bsums[g] = sum of qs[16g .. 16g+15].
struct BlockQ8_K { float d; int8_t qs[QK_K]; int16_t bsums[QK_K / 16]; };

static_assert(sizeof(BlockQ4_0) == 18, "q4_0 layout");
static_assert(sizeof(BlockQ4_1) == 20, "q4_1 layout");
static_assert(sizeof(BlockQ5_0) == 22, "q5_0 layout");
static_assert(sizeof(BlockQ5_1) == 24, "q5_1 layout");
static_assert(sizeof(BlockQ8_0) == 34, "q8_0 layout");
static_assert(sizeof(BlockQ8_1) == 36, "q8_1 layout");
static_assert(sizeof(BlockQ4_K) == 144, "q4_K layout");
static_assert(sizeof(BlockQ5_K) == 176, "q5_K layout");
static_assert(sizeof(BlockQ6_K) == 210, "q6_K layout");
static_assert(sizeof(BlockQ8_K) == 292, "q8_K layout");

}  // namespace blocks
}  // namespace nla
