// One optimizer step over a flat parameter set split into tensors (spans), in one call: the
// gradient policy's plan (REFERENCE §5) in its fixed order -- seeded noise per tensor, scaling of
// the tensors whose reduced mean |g| is below a threshold, gradient centralization, clipping by
// the global L2 norm recomputed after those changes -- then AdamW on every span with its own
// weight-decay switch. Each operation is the per-tensor kernel of gradstats.h / adamw.h applied
// span by span in span order, so the bits equal those of the per-tensor calls, for any thread
// count. Must never touch an element outside the spans (except the clip, which scales the whole
// gradient buffer as clip_by_global_norm does) or draw noise from anything but the span's key.
//
// grad: [n]; param, m, v: [n] (or null: the plan only); spans: [nspans]; mean_abs: [nspans].
#pragma once
#include "adamw.h"
#include "common.h"

namespace ua {

struct OptimSpan {
  int64_t offset = 0;  // element offset in the flat buffers
  int64_t numel = 0;
  int64_t rows = 0;    // centralization shape (rows * cols == numel when centralize)
  int64_t cols = 0;
  bool centralize = false;    // subtract each row's mean over cols (2-D weights in the plan's scope)
  bool decay = false;         // AdamW weight decay applies (not to norms and biases)
  uint64_t noise_tensor = 0;  // tensor index that keys this span's noise stream (< 2^32)
};

// The plan's numbers as the policy made them (doubles: its conditions are judged on these, the
// kernels then take float std and factor, as the single-tensor bindings do).
struct GradPlan {
  double noise_std = 0;  // 0: no noise
  uint64_t noise_seed = 0;
  uint64_t noise_step = 0;            // optimizer step that keys the noise (< 2^32)
  double scale_factor = 1;            // 1: no scaling
  double scale_threshold = 0;         // spans with mean_abs < threshold are scaled (when > 0)
  const double* mean_abs = nullptr;   // [nspans] reduced mean |g| the plan was made from
  double clip_norm = 0;               // 0: no clipping
  double l2_norm = 0;                 // reduced global L2 norm the plan was made from
};

struct PlanEffects {
  int64_t noised = 0;
  int64_t scaled = 0;
  int64_t centralized = 0;
  float clip_factor = 1.f;      // 1: nothing clipped
  double norm_before_clip = 0;  // after the changes, before the clip (plan.l2_norm when unchanged)
};

// The plan on grad, then (param != nullptr) AdamW with `adam` on every span, weight decay
// adam.weight_decay where span.decay and 0 elsewhere.
PlanEffects optimizer_step(float* grad, int64_t n, float* param, float* m, float* v, const OptimSpan* spans,
                           int64_t nspans, const GradPlan& plan, const AdamWParams& adam);

}  // namespace ua
