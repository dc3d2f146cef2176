// The CUDA model's state (api.h CudaModel::Impl), shared by cuda_model.cu (construction, host
// synchronization, the forward / backward around the layers) and cuda_layers.cu (one layer's
// forward and backward). Mirrors model/llama.{h,cc} step for step on device buffers, so the
// same inputs give the CPU model's results up to fp32 rounding order (bf16: also the rounding
// of every product's operands).
// Device buffers: the flat parameters (uploaded from the host model every forward; a bf16 copy
// in bf16 mode), the flat gradients (the host gradients uploaded at every backward, accumulated,
// downloaded: the CPU model's "backward adds into grads" exactly), the activation arena
// (allocated per token count and checkpointing setting), scratch.
#pragma once
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cuda/api.h"
#include "cuda/blas.cuh"
#include "cuda/layers.cuh"
#include "cuda/model/attention_backend.cuh"

namespace ua::cuda {

// Profile categories: the CPU model's (llama.h ProfileCategory, same names), then the host
// transfers, which only the CUDA model has.
enum CudaProfile { kCpGemm, kCpAttnFwd, kCpAttnBwd, kCpHeadFwd, kCpHeadBwd, kCpNorm, kCpRope, kCpSwiglu, kCpCopy,
                   kCpEmbed, kCpRecompute, kCpTransfer, kCpCount };

struct CudaModel::Impl {
  // Offsets of one layer's tensors in the flat buffers (-1: absent).
  struct LayerOff {
    int64_t ln1 = -1, wq = -1, wk = -1, wv = -1, wo = -1, bq = -1, bk = -1, bv = -1, bo = -1, qn = -1, kn = -1,
            ln2 = -1, wg = -1, wu = -1, wd = -1;
  };
  // One layer's saved (or recomputed) activations; the q/k norm ones exist with qk_norm only.
  struct Acts {
    float *x, *xn1, *rstd1, *q, *k, *v, *att, *lse, *h, *xn2, *rstd2, *gate, *up, *qpre, *kpre, *rstdq, *rstdk;
  };

  Impl(std::shared_ptr<LlamaModel> host, const ModelOptions& o);

  // construction
  void map_views();
  // the arena for n tokens and the current checkpointing setting
  void ensure_buffers(int64_t n);
  Acts acts_for(int64_t l);

  // products (cuda_layers.cu); activations are fp32, converted to bf16 scratch in bf16 mode.
  Precision precision() const { return bf16 ? Precision::kBF16 : Precision::kF32; }
  const void* weight(int64_t off) const;  // the operand view of a parameter
  const void* operand(const float* x, int64_t count, int slot);  // x itself, or its bf16 copy in slot 0/1
  // y[n, out] = beta * y + x[n, in] W^T (+ bias when b >= 0, added after the product)
  void proj(float* y, const float* x, int64_t w, int64_t b, int64_t n, int64_t in, int64_t out, float beta);
  // dx[n, in] = beta * dx + dy[n, out] W
  void proj_dx(float* dx, const float* dy, int64_t w, int64_t n, int64_t in, int64_t out, float beta);
  // dW[out, in] += dy^T x ; db[out] += colsum(dy) (when db >= 0)
  void proj_dw(int64_t w, int64_t db, const float* dy, const float* x, int64_t n, int64_t in, int64_t out);

  // one layer (cuda_layers.cu); y == nullptr: recomputation for the backward
  void layer_forward(int64_t l, Acts& a, float* y);
  void layer_backward(int64_t l, Acts& a, float* dres);
  AttnArgs attn_args(int64_t l) const;

  template <typename F> void timed(int cat, F&& f) {
    if (!profiling) {
      f();
      return;
    }
    stream.sync();
    const auto t0 = std::chrono::steady_clock::now();
    f();
    stream.sync();
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    profile[cat] += dt;
    if (recomputing) profile[kCpRecompute] += dt;
  }

  std::shared_ptr<LlamaModel> host;
  LlamaConfig cfg;
  int device;
  bool bf16;
  int64_t flat = 0;
  std::vector<LayerOff> layers;
  int64_t embed = -1, norm = -1, lm = -1;

  Stream stream;
  Blas blas;
  std::unique_ptr<HostRegistration> reg_params, reg_grads;
  DeviceArray<float> params, grads;
  DeviceArray<__nv_bfloat16> params16, act16[2];

  std::unique_ptr<CudaAttention> attn;
  UlyssesCudaAttention* ulysses = nullptr;  // attn, when sequence-parallel
  std::map<int64_t, DeviceMask> masks;      // by sliding window, for the current documents
  std::vector<int32_t> doc_lens;

  // arena
  bool checkpointing = false, buf_ckpt = false;
  int64_t buf_n = -1;
  DeviceArray<float> arena;
  std::vector<float*> layer_base;
  float *recompute_base = nullptr, *xfinal = nullptr, *hn = nullptr, *rstdf = nullptr, *lse_ce = nullptr,
        *loss_tok = nullptr, *tok_weight = nullptr, *dres = nullptr, *s_act = nullptr, *s_dg = nullptr, *s_du = nullptr,
        *s_dD = nullptr, *s_dq = nullptr, *s_dq2 = nullptr, *s_dk = nullptr, *s_dv = nullptr, *s_dk2 = nullptr;
  DeviceArray<double> reduce_scratch;
  LmHead head;

  // inputs of the last forward
  int64_t n = 0;
  float normalizer = 1.f;
  std::vector<int32_t> labels_host;
  DeviceArray<int32_t> tokens, labels, positions, argmax, plan_ids, plan_offsets, plan_tokens;
  int64_t plan_unique = 0;
  bool has_forward = false;

  // rope
  std::vector<double> inv_freq;
  DeviceArray<double> inv_freq_dev;
  int64_t rope_len = -1;
  double rope_scale = 1;

  bool profiling = false, recomputing = false;
  double profile[kCpCount] = {};
};

}  // namespace ua::cuda
