// Rotary position embedding (rotate-half, HF semantics) with the frequency tables of the rope
// scaling types (REFERENCE §7), applied in place.
// x: [n, heads, d], pos: [n] global position ids, inv_freq: [d/2]
// Angles are pos * inv_freq in double, then cos/sin in double (rounded to float once), so long
// positions keep their precision. Must never assume positions start at 0 or are contiguous, and
// never apply a default of its own (the parameters arrive resolved).
#include "rope.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "parallel.h"

namespace ua {

namespace {

constexpr double kTwoPi = 6.283185307179586476925286766559;

void require(bool ok, const std::string& msg) {
  if (!ok) throw ShapeError(msg);
}

bool positive(double x) { return std::isfinite(x) && x > 0; }

// YaRN's correction dimension: the (fractional) rotary dimension that turns `rotations` times
// over `context` positions.
double correction_dim(double rotations, double d, double theta, double context) {
  return d * std::log(context / (rotations * kTwoPi)) / (2 * std::log(theta));
}

// sign = +1: forward rotation R; sign = -1: its transpose R^T (rotation by -angle).
void rope_apply(float* x, const int32_t* pos, int64_t n, int64_t heads, int64_t d, const double* inv_freq,
                double scale, double sign, const char* what) {
  if (n < 0 || heads < 0 || d <= 0) throw ShapeError(std::string(what) + ": need n, heads >= 0 and d > 0");
  if (d % 2 != 0) throw ShapeError(std::string(what) + ": head dim d must be even, got " + std::to_string(d));
  if (!positive(scale)) throw ShapeError(std::string(what) + ": scale must be a positive number");
  const int64_t half = d / 2;
  const int nt = threads_for(n * heads * d * 4);
#pragma omp parallel num_threads(nt)
  {
    std::vector<float> cs(static_cast<size_t>(half)), sn(static_cast<size_t>(half));
#pragma omp for schedule(static)
    for (int64_t t = 0; t < n; ++t) {
      const double p = static_cast<double>(pos[t]);
      for (int64_t i = 0; i < half; ++i) {
        const double a = p * inv_freq[i];
        cs[i] = static_cast<float>(std::cos(a) * scale);
        sn[i] = static_cast<float>(sign * std::sin(a) * scale);
      }
      float* xt = x + t * heads * d;
      for (int64_t h = 0; h < heads; ++h) {
        float* lo = xt + h * d;
        float* hi = lo + half;
        for (int64_t i = 0; i < half; ++i) {
          const float a = lo[i], b = hi[i];
          lo[i] = a * cs[i] - b * sn[i];
          hi[i] = b * cs[i] + a * sn[i];
        }
      }
    }
  }
}

}  // namespace

void validate_rope(const RopeScaling& r, int64_t d) {
  require(d > 0 && d % 2 == 0, "rope: head_dim must be a positive even number, got " + std::to_string(d));
  require(positive(r.theta), "rope_theta: must be a positive number");
  require(positive(r.attention_factor), "rope_scaling.attention_factor: must be a positive number");
  switch (r.type) {
    case RopeType::kDefault:
      require(r.attention_factor == 1, "rope_scaling.attention_factor: only yarn scales cos/sin");
      break;
    case RopeType::kLinear:
      require(positive(r.factor), "rope_scaling.factor: must be a positive number");
      break;
    case RopeType::kDynamic:
      require(positive(r.factor), "rope_scaling.factor: must be a positive number");
      require(positive(r.max_pos), "max_position_embeddings: must be positive for dynamic rope");
      require(d > 2, "head_dim: dynamic rope needs head_dim > 2 (its base exponent is d / (d - 2))");
      break;
    case RopeType::kLlama3:
      require(positive(r.factor), "rope_scaling.factor: must be a positive number");
      require(positive(r.low_freq_factor), "rope_scaling.low_freq_factor: must be a positive number");
      require(std::isfinite(r.high_freq_factor) && r.high_freq_factor > r.low_freq_factor,
              "rope_scaling.high_freq_factor: must be greater than low_freq_factor");
      require(positive(r.original_max_pos), "rope_scaling.original_max_position_embeddings: must be positive");
      break;
    case RopeType::kYarn:
      require(positive(r.factor), "rope_scaling.factor: must be a positive number");
      require(positive(r.original_max_pos), "rope_scaling.original_max_position_embeddings: must be positive");
      require(positive(r.beta_fast) && positive(r.beta_slow), "rope_scaling.beta_fast / beta_slow: must be positive");
      require(r.theta != 1, "rope_theta: yarn needs rope_theta != 1 (its correction range divides by log theta)");
      break;
    default:
      throw ShapeError("rope_scaling.rope_type: unknown type code " + std::to_string(static_cast<int>(r.type)));
  }
}

void rope_inv_freq(double* inv_freq, const RopeScaling& r, int64_t d, int64_t seq_len) {
  validate_rope(r, d);
  const int64_t half = d / 2;
  const double dd = static_cast<double>(d);
  double theta = r.theta;
  if (r.type == RopeType::kDynamic) {
    // NTK-aware: the base grows with the sequence once it is longer than max_position_embeddings.
    const double len = std::max(static_cast<double>(seq_len), r.max_pos);
    theta = r.theta * std::pow(r.factor * len / r.max_pos - (r.factor - 1), dd / (dd - 2));
  }
  for (int64_t i = 0; i < half; ++i) inv_freq[i] = std::pow(theta, -2.0 * static_cast<double>(i) / dd);
  switch (r.type) {
    case RopeType::kLinear:
      for (int64_t i = 0; i < half; ++i) inv_freq[i] /= r.factor;
      break;
    case RopeType::kLlama3: {
      // Wavelengths longer than the low-frequency bound are divided by factor, shorter than the
      // high-frequency bound kept; in between (bounds included) a linear blend in 1/wavelength.
      const double low_wavelen = r.original_max_pos / r.low_freq_factor;
      const double high_wavelen = r.original_max_pos / r.high_freq_factor;
      for (int64_t i = 0; i < half; ++i) {
        const double f = inv_freq[i], wavelen = kTwoPi / f;
        if (wavelen > low_wavelen) {
          inv_freq[i] = f / r.factor;
        } else if (!(wavelen < high_wavelen)) {
          const double smooth = (r.original_max_pos / wavelen - r.low_freq_factor) / (r.high_freq_factor - r.low_freq_factor);
          inv_freq[i] = (1 - smooth) * f / r.factor + smooth * f;
        }
      }
      break;
    }
    case RopeType::kYarn: {
      // Dimensions that turn more than beta_fast times over the original context keep their
      // frequency (extrapolation), fewer than beta_slow times are divided by factor
      // (interpolation), with a linear ramp over the dimension index in between.
      double lo = correction_dim(r.beta_fast, dd, r.theta, r.original_max_pos);
      double hi = correction_dim(r.beta_slow, dd, r.theta, r.original_max_pos);
      if (r.truncate) {
        lo = std::floor(lo);
        hi = std::ceil(hi);
      }
      lo = std::max(lo, 0.0);
      hi = std::min(hi, dd - 1);
      if (lo == hi) hi += 0.001;  // a zero-width ramp would divide by zero
      for (int64_t i = 0; i < half; ++i) {
        const double ramp = std::clamp((static_cast<double>(i) - lo) / (hi - lo), 0.0, 1.0);
        const double keep = 1 - ramp;  // weight of the unscaled (extrapolated) frequency
        inv_freq[i] = inv_freq[i] / r.factor * (1 - keep) + inv_freq[i] * keep;
      }
      break;
    }
    default:
      break;
  }
}

void rope_forward_table(float* x, const int32_t* pos, int64_t n, int64_t heads, int64_t d, const double* inv_freq,
                        double scale) {
  rope_apply(x, pos, n, heads, d, inv_freq, scale, 1.0, "rope_forward");
}

void rope_backward_table(float* dx, const int32_t* pos, int64_t n, int64_t heads, int64_t d, const double* inv_freq,
                         double scale) {
  rope_apply(dx, pos, n, heads, d, inv_freq, scale, -1.0, "rope_backward");
}

namespace {
std::vector<double> default_table(int64_t d, float theta, const char* what) {
  if (d <= 0 || d % 2 != 0) throw ShapeError(std::string(what) + ": head dim d must be even and positive, got " + std::to_string(d));
  if (!(theta > 0.f)) throw ShapeError(std::string(what) + ": theta must be positive");
  RopeScaling r;
  r.theta = theta;
  std::vector<double> t(static_cast<size_t>(d / 2));
  rope_inv_freq(t.data(), r, d, 0);
  return t;
}
}  // namespace

void rope_forward(float* x, const int32_t* pos, int64_t n, int64_t heads, int64_t d, float theta) {
  const std::vector<double> t = default_table(d, theta, "rope_forward");
  rope_forward_table(x, pos, n, heads, d, t.data(), 1.0);
}

void rope_backward(float* dx, const int32_t* pos, int64_t n, int64_t heads, int64_t d, float theta) {
  const std::vector<double> t = default_table(d, theta, "rope_backward");
  rope_backward_table(dx, pos, n, heads, d, t.data(), 1.0);
}

}  // namespace ua
