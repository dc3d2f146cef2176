// Private to the bf16 flash attention: the AVX512-BF16 kernels (attention_bf16_avx512.cc), called
// only by attention_bf16.cc and only when use_avx512bf16() holds. Arguments are already checked
// there (shape, even d, documents).
#pragma once
#include <cstdint>
#include <vector>

#include "attention_common.h"

namespace ua::attn {

void forward_bf16_native(uint16_t* out, float* lse, const uint16_t* q, const uint16_t* k, const uint16_t* v,
                         const std::vector<Doc>& docs, const AttnShape& sh);

void backward_bf16_native(float* dq, float* dk, float* dv, const uint16_t* dout, const uint16_t* q, const uint16_t* k,
                          const uint16_t* v, const uint16_t* out, const float* lse, const std::vector<Doc>& docs,
                          const AttnShape& sh);

}  // namespace ua::attn
