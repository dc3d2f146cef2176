// LoRA adapter math (Hu et al. 2021, as PEFT computes it) for the linear modules of the Llama
// decoder: y = W x (+ b) + s * B (A dropout(x)), s = alpha / r, A: [r, in], B: [out, r].
// Pure C++ over float* and sizes (no N-API, no model state): the model owns the buffers and calls
// these per (layer, module). Randomness (A's initialization, dropout masks) comes from the
// counter-based Philox4x32-10 of kernels/gradstats.h, keyed so that the same (seed, key, layer,
// module) gives the same bits on every process and for any thread count. Must never draw
// unkeyed randomness or allocate per call.
//
// Shapes: x, xd: [n, in]; y, dy: [n, out]; u, du: [n, r]; A, dA: [r, in]; B, dB: [out, r].
#pragma once
#include <cstdint>
#include <string>

namespace ua {

// The linear modules of one layer, in PEFT's (= the model's) order.
enum LoraModule { kLoraQ, kLoraK, kLoraV, kLoraO, kLoraGate, kLoraUp, kLoraDown, kLoraModules };

// "q_proj", ..., "down_proj"; nullptr outside [0, kLoraModules).
const char* lora_module_name(int m);
// "self_attn" for q/k/v/o, "mlp" for gate/up/down.
const char* lora_module_parent(int m);

struct LoraConfig {
  int64_t rank = 8;
  float alpha = 16.f;
  float dropout = 0.f;      // in [0, 1)
  uint32_t targets = 0;     // bit m set: module m of every layer gets an adapter
  uint64_t seed = 0;        // initialization and dropout streams
  float scale() const { return alpha / static_cast<float>(rank); }
};

// Throws std::invalid_argument naming the field (rank >= 1, alpha > 0 finite, 0 <= dropout < 1,
// at least one target, no unknown target bit).
void validate_lora_config(const LoraConfig& c);

// A[r, in] ~ U(-1/sqrt(in), 1/sqrt(in)): PEFT's kaiming_uniform_(a = sqrt(5)), whose bound is
// gain * sqrt(3 / fan_in) with gain = sqrt(2 / (1 + 5)) = 1/sqrt(3). Element i uses Philox block
// i / 4 (word i % 4) with counter (block lo32, block hi32, 0, tensor lo32) and key
// (seed lo32, seed hi32 ^ kLoraInitDomain); u = ((w >> 8) + 0.5) 2^-24, a = bound (2u - 1).
void lora_init_a(float* A, int64_t r, int64_t in, uint64_t seed, uint64_t tensor);

// Dropout stream of (layer, module): stream = layer * 8 + module. Element i (row-major index in
// the whole sequence's [s, in], so a shard of a sequence-parallel rank passes base = first token * in)
// is kept when (w >> 8) 2^-24 >= p, w = word i % 4 of Philox block i / 4 with counter
// (block lo32, block hi32, step_key, stream) and key (seed lo32, seed hi32 ^ kLoraDropoutDomain).
bool lora_keep(uint64_t seed, uint32_t step_key, uint32_t stream, int64_t i, float p);

// xd[i] = keep(base + i) * x[i] / (1 - p)   (p > 0), i in [0, count)
void lora_dropout_forward(float* xd, const float* x, int64_t base, int64_t count, float p, uint64_t seed,
                          uint32_t step_key, uint32_t stream);
// dx[i] += keep(base + i) * dxd[i] / (1 - p)
void lora_dropout_backward(float* dx, const float* dxd, int64_t base, int64_t count, float p, uint64_t seed,
                           uint32_t step_key, uint32_t stream);

// y += scale * (xd A^T) B^T ; u (scratch [n, r]) receives xd A^T.
void lora_forward(float* y, float* u, const float* xd, const float* A, const float* B, int64_t n, int64_t in,
                  int64_t out, int64_t r, float scale);

// Given dy = dL/dy: dB += scale * dy^T u ; du = scale * dy B ; dA += du^T xd ;
// dxd (nullable: skipped) = du A, or += du A when accumulate. u must hold xd A^T (lora_forward's u).
void lora_backward(float* dxd, bool accumulate, float* dA, float* dB, float* du, const float* dy, const float* u,
                   const float* xd, const float* A, const float* B, int64_t n, int64_t in, int64_t out, int64_t r,
                   float scale);

}  // namespace ua
