// The fused optimizer step (see optimizer_step.h): the plan's operations and AdamW, span by span,
// through the same per-tensor kernels the single-tensor bindings run.
#include "optimizer_step.h"

#include <vector>

#include "gradstats.h"

namespace ua {

PlanEffects optimizer_step(float* grad, int64_t n, float* param, float* m, float* v, const OptimSpan* spans,
                           int64_t nspans, const GradPlan& plan, const AdamWParams& adam) {
  if (n < 0 || nspans < 0) throw ShapeError("optimizer_step: negative size");
  for (int64_t t = 0; t < nspans; ++t) {
    const OptimSpan& s = spans[t];
    if (s.offset < 0 || s.numel < 0 || s.offset > n - s.numel)
      throw ShapeError("optimizer_step: span " + std::to_string(t) + " is outside the buffer of " + std::to_string(n));
    if (s.centralize && (s.rows < 0 || s.cols < 0 || s.rows * s.cols != s.numel))
      throw ShapeError("optimizer_step: span " + std::to_string(t) + ": rows x cols != numel");
  }
  PlanEffects fx;
  fx.norm_before_clip = plan.l2_norm;
  bool changed = false;
  if (plan.noise_std > 0) {
    for (int64_t t = 0; t < nspans; ++t) {
      add_noise(grad + spans[t].offset, spans[t].numel, static_cast<float>(plan.noise_std), plan.noise_seed,
                plan.noise_step, spans[t].noise_tensor);
      ++fx.noised;
    }
    changed = true;
  }
  if (plan.scale_factor != 1 && plan.scale_threshold > 0) {
    // judged on the reduced statistics the policy saw, before the noise
    for (int64_t t = 0; t < nspans; ++t) {
      if (plan.mean_abs[t] < plan.scale_threshold) {
        scale(grad + spans[t].offset, spans[t].numel, static_cast<float>(plan.scale_factor));
        ++fx.scaled;
      }
    }
    changed = changed || fx.scaled > 0;
  }
  for (int64_t t = 0; t < nspans; ++t) {
    if (!spans[t].centralize) continue;
    centralize(grad + spans[t].offset, spans[t].rows, spans[t].cols);
    ++fx.centralized;
    changed = true;
  }
  if (plan.clip_norm > 0) {
    if (changed) {
      std::vector<TensorSpan> ts(static_cast<size_t>(nspans));
      for (int64_t t = 0; t < nspans; ++t) {
        ts[t].offset = spans[t].offset;
        ts[t].numel = ts[t].rows = spans[t].numel;
        ts[t].cols = 1;
      }
      fx.norm_before_clip = grad_stats(nullptr, grad, ts.data(), nspans).l2_norm;
    }
    fx.clip_factor = clip_by_global_norm(grad, n, fx.norm_before_clip, plan.clip_norm);
  }
  if (param) {
    AdamWParams p = adam;
    for (int64_t t = 0; t < nspans; ++t) {
      const OptimSpan& s = spans[t];
      p.weight_decay = s.decay ? adam.weight_decay : 0.f;
      adamw_step(param + s.offset, m + s.offset, v + s.offset, grad + s.offset, s.numel, p);
    }
  }
  return fx;
}

}  // namespace ua
