// bf16 flash attention (attention_bf16.h): argument checks, the choice between the AVX512-BF16
// kernels (attention_bf16_avx512.cc) and the fp32 fallback, and the fallback itself (exact
// widening to fp32, the fp32 kernels of attention.cc, one rounding of the output to bf16).
// Must never run an AVX512-BF16 instruction unless use_avx512bf16() holds.
#include "attention_bf16.h"

#include "attention_bf16_native.h"
#include "attention_common.h"
#include "bf16.h"

namespace ua {

namespace {

using attn::Doc;
using attn::Scratch;

std::vector<Doc> checked_docs(const AttnShape& sh, const int32_t* doc_lens, int64_t ndocs, const char* who) {
  attn::check_shape(sh, who);
  if (sh.d % 2 != 0) throw ShapeError(std::string(who) + ": bf16 attention needs an even head dim, got " + std::to_string(sh.d));
  return attn::documents(doc_lens, ndocs, sh.s, who);
}

}  // namespace

const char* attention_bf16_impl() { return use_avx512bf16() ? "avx512bf16" : "fp32-fallback"; }

void flash_attention_forward_bf16(uint16_t* out, float* lse, const uint16_t* q, const uint16_t* k, const uint16_t* v,
                                  const int32_t* doc_lens, int64_t ndocs, const AttnShape& sh) {
  const std::vector<Doc> docs = checked_docs(sh, doc_lens, ndocs, "flash_attention_forward_bf16");
  if (use_avx512bf16()) return attn::forward_bf16_native(out, lse, q, k, v, docs, sh);
  const int64_t nq = sh.s * sh.H * sh.d, nkv = sh.s * sh.Hkv * sh.d;
  Scratch<float> q32(nq), k32(nkv), v32(nkv), o32(nq);
  bf16_to_f32(q32.data(), q, nq);
  bf16_to_f32(k32.data(), k, nkv);
  bf16_to_f32(v32.data(), v, nkv);
  flash_attention_forward(o32.data(), lse, q32.data(), k32.data(), v32.data(), doc_lens, ndocs, sh);
  f32_to_bf16(out, o32.data(), nq);
}

void flash_attention_backward_bf16(float* dq, float* dk, float* dv, const uint16_t* dout, const uint16_t* q,
                                   const uint16_t* k, const uint16_t* v, const uint16_t* out, const float* lse,
                                   const int32_t* doc_lens, int64_t ndocs, const AttnShape& sh) {
  const std::vector<Doc> docs = checked_docs(sh, doc_lens, ndocs, "flash_attention_backward_bf16");
  if (use_avx512bf16()) return attn::backward_bf16_native(dq, dk, dv, dout, q, k, v, out, lse, docs, sh);
  const int64_t nq = sh.s * sh.H * sh.d, nkv = sh.s * sh.Hkv * sh.d;
  Scratch<float> q32(nq), k32(nkv), v32(nkv), o32(nq), do32(nq);
  bf16_to_f32(q32.data(), q, nq);
  bf16_to_f32(k32.data(), k, nkv);
  bf16_to_f32(v32.data(), v, nkv);
  bf16_to_f32(o32.data(), out, nq);
  bf16_to_f32(do32.data(), dout, nq);
  flash_attention_backward(dq, dk, dv, do32.data(), q32.data(), k32.data(), v32.data(), o32.data(), lse, doc_lens,
                           ndocs, sh);
}

}  // namespace ua
