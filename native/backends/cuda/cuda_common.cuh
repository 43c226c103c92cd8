// Shared pieces of the CUDA backend (internal to native/cuda; never include napi.h here).
#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "common/error.h"
#include "formats/quant.h"

namespace nla {
namespace cuda {

// Throws nla::Error for a failed CUDA call: code::OOM for an allocation failure, INTERNAL otherwise.
[[noreturn]] void throw_cuda(cudaError_t err, const char* what, const char* file, int line);

#define NLA_CUDA_CHECK(call)                                                      \
  do {                                                                            \
    cudaError_t nla_err_ = (call);                                                \
    if (nla_err_ != cudaSuccess) ::nla::cuda::throw_cuda(nla_err_, #call, __FILE__, __LINE__); \
  } while (0)

// After a kernel launch: launch-configuration errors (and sticky errors of earlier kernels).
#define NLA_CUDA_LAUNCH_CHECK(what) NLA_CUDA_CHECK(cudaPeekAtLastError())

// y[t*y_stride + o] = dot(W row r0+o, activation row t) for o < n_out, t < T.
// w: device copy of the weight's rows; xq: activations already in the weight's dot type
// (contiguous rows of xq_row_bytes), or for F32 weights the fp32 activations with stride x_stride floats.
void launch_matmul(GgmlType type, const uint8_t* w, size_t w_row_bytes, int64_t n_in, int64_t n_out, int64_t r0,
                   const void* xq, size_t xq_row_bytes, int64_t T, float* y, int64_t y_stride, cudaStream_t s);

// Quantizes T rows of n floats (row stride x_stride) into `type` (F16, BF16, Q8_0, Q8_1, Q8_K), rows of row_bytes.
void launch_quantize(GgmlType type, const float* x, int64_t x_stride, int64_t n, int64_t T, void* out, size_t row_bytes,
                     cudaStream_t s);

}  // namespace cuda
}  // namespace nla
