// One decoder layer of the CUDA model, forward and backward (state in impl.cuh), the GPU twin
// of LlamaModel::layer_forward / layer_backward (model/llama.cc) operation for operation:
//   xn1 = rms(x); q, k, v = proj(xn1) (+ bias); [qwen3: q, k = rms per head]; rope(q), rope(k);
//   att = attention(q, k, v); h = x + att Wo^T (+ bo); xn2 = rms(h);
//   act = silu(gate(xn2)) * up(xn2); y = h + act Wd^T.
// The products run on cuBLAS: fp32, or (bf16 mode) bf16 copies of both operands with fp32
// accumulation; everything else is fp32. Every backward product accumulates into the device
// gradients, as the CPU's does into the host's.
#include <cmath>

#include "cuda/model/impl.cuh"

namespace ua::cuda {

const void* CudaModel::Impl::weight(int64_t off) const {
  return bf16 ? static_cast<const void*>(params16.get() + off) : static_cast<const void*>(params.get() + off);
}

const void* CudaModel::Impl::operand(const float* x, int64_t count, int slot) {
  if (!bf16) return x;
  f32_to_bf16(act16[slot].get(), x, count, stream.get());
  return act16[slot].get();
}

void CudaModel::Impl::proj(float* y, const float* x, int64_t w, int64_t b, int64_t nt, int64_t in, int64_t out, float beta) {
  blas.gemm(y, out, operand(x, nt * in, 0), in, weight(w), in, nt, out, in, false, true, 1.f, beta, precision());
  if (b >= 0) add_rows(y, params.get() + b, nt, out, stream.get());
}

void CudaModel::Impl::proj_dx(float* dx, const float* dy, int64_t w, int64_t nt, int64_t in, int64_t out, float beta) {
  blas.gemm(dx, in, operand(dy, nt * out, 0), out, weight(w), in, nt, in, out, false, false, 1.f, beta, precision());
}

void CudaModel::Impl::proj_dw(int64_t w, int64_t db, const float* dy, const float* x, int64_t nt, int64_t in, int64_t out) {
  const void* dyo = operand(dy, nt * out, 0);
  const void* xo = operand(x, nt * in, 1);
  blas.gemm(grads.get() + w, in, dyo, out, xo, in, out, in, nt, true, false, 1.f, 1.f, precision());
  if (db >= 0) column_sum_into(grads.get() + db, dy, nt, out, reduce_scratch.get(), stream.get());
}

AttnArgs CudaModel::Impl::attn_args(int64_t l) const {
  AttnArgs a;
  a.n = buf_n;
  a.H = cfg.heads;
  a.Hkv = cfg.kv_heads;
  a.d = cfg.head_dim;
  a.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(cfg.head_dim)));
  a.mask = masks.at(cfg.layer_window.empty() ? 0 : cfg.layer_window[l]).view();
  return a;
}

void CudaModel::Impl::layer_forward(int64_t l, Acts& a, float* y) {
  const int64_t nt = buf_n, D = cfg.hidden, I = cfg.intermediate, QD = cfg.heads * cfg.head_dim,
                KD = cfg.kv_heads * cfg.head_dim;
  const LayerOff& p = layers[l];
  cudaStream_t s = stream.get();
  const float* P = params.get();
  float* qp = cfg.qk_norm ? a.qpre : a.q;
  float* kp = cfg.qk_norm ? a.kpre : a.k;

  timed(kCpNorm, [&] { rmsnorm_forward(a.xn1, a.rstd1, a.x, P + p.ln1, nt, D, cfg.rms_eps, s); });
  timed(kCpGemm, [&] {
    proj(qp, a.xn1, p.wq, p.bq, nt, D, QD, 0.f);
    proj(kp, a.xn1, p.wk, p.bk, nt, D, KD, 0.f);
    proj(a.v, a.xn1, p.wv, p.bv, nt, D, KD, 0.f);
  });
  if (cfg.qk_norm)
    timed(kCpNorm, [&] {
      rmsnorm_forward(a.q, a.rstdq, a.qpre, P + p.qn, nt * cfg.heads, cfg.head_dim, cfg.rms_eps, s);
      rmsnorm_forward(a.k, a.rstdk, a.kpre, P + p.kn, nt * cfg.kv_heads, cfg.head_dim, cfg.rms_eps, s);
    });
  timed(kCpRope, [&] {
    rope_apply(a.q, positions.get(), nt, cfg.heads, cfg.head_dim, inv_freq_dev.get(), rope_scale, false, s);
    rope_apply(a.k, positions.get(), nt, cfg.kv_heads, cfg.head_dim, inv_freq_dev.get(), rope_scale, false, s);
  });
  timed(kCpAttnFwd, [&] { attn->forward(a.att, a.lse, a.q, a.k, a.v, attn_args(l), s); });
  // h = x + att Wo^T (+ bo): the residual folded into the product (beta = 1)
  timed(kCpCopy, [&] { UA_CUDA(cudaMemcpyAsync(a.h, a.x, nt * D * sizeof(float), cudaMemcpyDeviceToDevice, s)); });
  timed(kCpGemm, [&] { proj(a.h, a.att, p.wo, p.bo, nt, QD, D, 1.f); });
  timed(kCpNorm, [&] { rmsnorm_forward(a.xn2, a.rstd2, a.h, P + p.ln2, nt, D, cfg.rms_eps, s); });
  timed(kCpGemm, [&] {
    proj(a.gate, a.xn2, p.wg, -1, nt, D, I, 0.f);
    proj(a.up, a.xn2, p.wu, -1, nt, D, I, 0.f);
  });
  if (!y) return;
  timed(kCpSwiglu, [&] { swiglu_forward(s_act, a.gate, a.up, nt * I, s); });
  timed(kCpCopy, [&] { UA_CUDA(cudaMemcpyAsync(y, a.h, nt * D * sizeof(float), cudaMemcpyDeviceToDevice, s)); });
  timed(kCpGemm, [&] { proj(y, s_act, p.wd, -1, nt, I, D, 1.f); });
}

// On entry dres = dL/dy (layer output); on exit dres = dL/dx (layer input).
void CudaModel::Impl::layer_backward(int64_t l, Acts& a, float* dr) {
  const int64_t nt = buf_n, D = cfg.hidden, I = cfg.intermediate, QD = cfg.heads * cfg.head_dim,
                KD = cfg.kv_heads * cfg.head_dim;
  const LayerOff& p = layers[l];
  cudaStream_t s = stream.get();
  const float* P = params.get();
  float* G = grads.get();
  double* rs = reduce_scratch.get();
  auto zero = [&](float* x, int64_t count) { UA_CUDA(cudaMemsetAsync(x, 0, count * sizeof(float), s)); };

  // MLP: y = h + act Wd^T
  timed(kCpSwiglu, [&] { swiglu_forward(s_act, a.gate, a.up, nt * I, s); });
  timed(kCpGemm, [&] { proj_dw(p.wd, -1, dr, s_act, nt, I, D); });  // dWd += dy^T act
  float* dact = s_act;  // act is dead once dWd is accumulated
  timed(kCpGemm, [&] { proj_dx(dact, dr, p.wd, nt, I, D, 0.f); });  // dact = dy Wd
  timed(kCpCopy, [&] {
    zero(s_dg, nt * I);
    zero(s_du, nt * I);
  });
  timed(kCpSwiglu, [&] { swiglu_backward(s_dg, s_du, dact, a.gate, a.up, nt * I, s); });
  float* dxn2 = s_dD;
  timed(kCpGemm, [&] {
    proj_dx(dxn2, s_dg, p.wg, nt, D, I, 0.f);
    proj_dx(dxn2, s_du, p.wu, nt, D, I, 1.f);
    proj_dw(p.wg, -1, s_dg, a.xn2, nt, D, I);
    proj_dw(p.wu, -1, s_du, a.xn2, nt, D, I);
  });
  timed(kCpNorm, [&] { rmsnorm_backward(dr, G + p.ln2, dxn2, a.h, P + p.ln2, a.rstd2, nt, D, rs, s); });  // dres = dL/dh

  // attention: h = x + att Wo^T (+ bo)
  float* datt = s_dq2;
  timed(kCpGemm, [&] {
    proj_dx(datt, dr, p.wo, nt, QD, D, 0.f);
    proj_dw(p.wo, p.bo, dr, a.att, nt, QD, D);
  });
  timed(kCpCopy, [&] {
    zero(s_dq, nt * QD);
    zero(s_dk, nt * KD);
    zero(s_dv, nt * KD);
  });
  timed(kCpAttnBwd, [&] { attn->backward(s_dq, s_dk, s_dv, datt, a.q, a.k, a.v, a.att, a.lse, attn_args(l), s); });
  timed(kCpRope, [&] {
    rope_apply(s_dq, positions.get(), nt, cfg.heads, cfg.head_dim, inv_freq_dev.get(), rope_scale, true, s);
    rope_apply(s_dk, positions.get(), nt, cfg.kv_heads, cfg.head_dim, inv_freq_dev.get(), rope_scale, true, s);
  });
  float* dq = s_dq;
  float* dk = s_dk;
  if (cfg.qk_norm) {
    // datt (s_dq2) is dead after the attention backward: it takes dL/dqpre
    dq = s_dq2;
    dk = s_dk2;
    timed(kCpCopy, [&] {
      zero(dq, nt * QD);
      zero(dk, nt * KD);
    });
    timed(kCpNorm, [&] {
      rmsnorm_backward(dq, G + p.qn, s_dq, a.qpre, P + p.qn, a.rstdq, nt * cfg.heads, cfg.head_dim, rs, s);
      rmsnorm_backward(dk, G + p.kn, s_dk, a.kpre, P + p.kn, a.rstdk, nt * cfg.kv_heads, cfg.head_dim, rs, s);
    });
  }
  float* dxn1 = s_dD;
  timed(kCpGemm, [&] {
    proj_dx(dxn1, dq, p.wq, nt, D, QD, 0.f);
    proj_dx(dxn1, dk, p.wk, nt, D, KD, 1.f);
    proj_dx(dxn1, s_dv, p.wv, nt, D, KD, 1.f);
    proj_dw(p.wq, p.bq, dq, a.xn1, nt, D, QD);
    proj_dw(p.wk, p.bk, dk, a.xn1, nt, D, KD);
    proj_dw(p.wv, p.bv, s_dv, a.xn1, nt, D, KD);
  });
  timed(kCpNorm, [&] { rmsnorm_backward(dr, G + p.ln1, dxn1, a.x, P + p.ln1, a.rstd1, nt, D, rs, s); });  // dres = dL/dx
}

}  // namespace ua::cuda
