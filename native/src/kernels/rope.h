// Rotary position embedding, rotate-half convention (HF Llama/Qwen2/Qwen3/Mistral):
//   angle = pos * inv_freq[i], x'[i] = s (x[i]*cos - x[i+d/2]*sin), x'[i+d/2] = s (x[i+d/2]*cos + x[i]*sin)
//   (i < d/2), s = the attention scale of the rope type (yarn; 1 otherwise)
// x: [n, heads, d] (in place), pos: [n] global position ids, inv_freq: [d/2].
//
// The frequency table follows HF transformers' modeling_rope_utils for every rope type it names
// here (REFERENCE §7), computed in double from fully resolved parameters: the caller (the model
// config parser) has already applied every default, so nothing here guesses.
#pragma once
#include "common.h"

namespace ua {

enum class RopeType { kDefault = 0, kLinear = 1, kDynamic = 2, kLlama3 = 3, kYarn = 4 };

struct RopeScaling {
  RopeType type = RopeType::kDefault;
  double theta = 10000;              // rope_theta
  double factor = 1;                 // linear, dynamic, llama3, yarn
  double low_freq_factor = 1;        // llama3
  double high_freq_factor = 4;       // llama3
  double original_max_pos = 0;       // llama3, yarn: original_max_position_embeddings
  double max_pos = 0;                // dynamic: max_position_embeddings
  double beta_fast = 32;             // yarn
  double beta_slow = 1;              // yarn
  bool truncate = true;              // yarn: floor/ceil the correction range
  double attention_factor = 1;       // yarn: multiplies cos and sin (1 for every other type)
};

// Throws ShapeError naming the field when a parameter is out of range for its type.
void validate_rope(const RopeScaling& r, int64_t d);

// inv_freq[i], i < d/2. seq_len = the largest position id + 1 of the sequence being rotated; only
// `dynamic` reads it (its base grows once seq_len exceeds max_pos).
void rope_inv_freq(double* inv_freq, const RopeScaling& r, int64_t d, int64_t seq_len);

// Rotations with a precomputed table (angles and cos/sin in double, rounded to float once, so
// long positions keep their precision); scale multiplies cos and sin.
void rope_forward_table(float* x, const int32_t* pos, int64_t n, int64_t heads, int64_t d, const double* inv_freq,
                        double scale);
// The backward: dx <- R^T dx, with the same table and scale.
void rope_backward_table(float* dx, const int32_t* pos, int64_t n, int64_t heads, int64_t d, const double* inv_freq,
                         double scale);

// Default rope (inv_freq = theta^(-2i/d), scale 1).
void rope_forward(float* x, const int32_t* pos, int64_t n, int64_t heads, int64_t d, float theta);
void rope_backward(float* dx, const int32_t* pos, int64_t n, int64_t heads, int64_t d, float theta);

}  // namespace ua
