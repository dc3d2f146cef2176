// LlamaInfer (llama_infer.h): the decoder's forward over new tokens with cached keys and values.
// Mirrors LlamaModel::layer_forward step for step (same kernels, same order: projections, their
// adapters, the q/k norm, RoPE, attention, o_proj + residual, MLP); only attention differs, as it
// reads the cache. Products go through matmul / linear_forward on the calling worker thread.
// Must never write the model's buffers.
#include "model/llama_infer.h"

#include <algorithm>
#include <map>
#include <string>

#include "kernels/attention.h"
#include "kernels/attention_cached.h"
#include "kernels/embedding.h"
#include "kernels/linear.h"
#include "kernels/matmul.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"
#include "model/lora.h"

namespace ua {

namespace {

// y[m, out] += b[out]
void AddRowBias(float* y, const float* b, int64_t m, int64_t out) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < out; ++j) y[i * out + j] += b[j];
}

}  // namespace

LlamaInfer::LlamaInfer(std::shared_ptr<const LlamaModel> model) : model_(std::move(model)), cfg_(model_->config()) {
  std::map<std::string, const float*> by_name;
  const float* base = model_->params()->data;
  for (const auto& v : model_->views()) by_name[v.name] = base + v.offset;
  auto get = [&](const std::string& name, bool present) -> const float* {
    if (!present) return nullptr;
    auto it = by_name.find(name);
    if (it == by_name.end()) throw CodedError("ERR_STATE", "LlamaInfer: the model has no tensor " + name);
    return it->second;
  };
  embed_ = get("model.embed_tokens.weight", true);
  norm_ = get("model.norm.weight", true);
  head_ = cfg_.tie_embeddings ? embed_ : get("lm_head.weight", true);
  for (int64_t l = 0; l < cfg_.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    const std::string a = p + "self_attn.", m = p + "mlp.";
    Layer L{};
    L.ln1 = get(p + "input_layernorm.weight", true);
    L.wq = get(a + "q_proj.weight", true);
    L.bq = get(a + "q_proj.bias", cfg_.qkv_bias);
    L.wk = get(a + "k_proj.weight", true);
    L.bk = get(a + "k_proj.bias", cfg_.qkv_bias);
    L.wv = get(a + "v_proj.weight", true);
    L.bv = get(a + "v_proj.bias", cfg_.qkv_bias);
    L.wo = get(a + "o_proj.weight", true);
    L.bo = get(a + "o_proj.bias", cfg_.o_bias);
    L.qn = get(a + "q_norm.weight", cfg_.qk_norm);
    L.kn = get(a + "k_norm.weight", cfg_.qk_norm);
    L.ln2 = get(p + "post_attention_layernorm.weight", true);
    L.wg = get(m + "gate_proj.weight", true);
    L.wu = get(m + "up_proj.weight", true);
    L.wd = get(m + "down_proj.weight", true);
    layers_.push_back(L);
  }
  k_.resize(static_cast<size_t>(cfg_.layers));
  v_.resize(static_cast<size_t>(cfg_.layers));
  inv_freq_.assign(static_cast<size_t>(cfg_.head_dim / 2), 0.0);
  rope_inv_freq(inv_freq_.data(), cfg_.rope, cfg_.head_dim, 0);
  rope_scale_ = cfg_.rope.attention_factor;
  cached_adapters_ = adapter_state();
}

LlamaInfer::AdapterState LlamaInfer::adapter_state() const {
  if (!model_->adapters_enabled()) return {};
  return {true, model_->lora_params()->data};
}

void LlamaInfer::bind_adapters() {
  adapters_.clear();
  lora_rank_ = 0;
  if (!model_->adapters_enabled()) return;
  const LoraConfig& c = model_->lora_config();
  lora_rank_ = c.rank;
  lora_scale_ = c.scale();
  adapters_.assign(static_cast<size_t>(cfg_.layers * kLoraModules), Adapter{});
  const float* base = model_->lora_params()->data;
  std::map<std::string, const float*> by_name;
  for (const auto& v : model_->lora_views()) by_name[v.name] = base + v.offset;
  for (int64_t l = 0; l < cfg_.layers; ++l)
    for (int m = 0; m < kLoraModules; ++m) {
      const std::string p = "base_model.model.model.layers." + std::to_string(l) + "." + lora_module_parent(m) + "." +
                            lora_module_name(m) + ".";
      auto a = by_name.find(p + "lora_A.weight"), b = by_name.find(p + "lora_B.weight");
      if (a != by_name.end() && b != by_name.end()) adapters_[static_cast<size_t>(l * kLoraModules + m)] = {a->second, b->second};
    }
}

void LlamaInfer::truncate(int64_t len) {
  if (len < 0 || len > length())
    throw ShapeError("truncate: length must be in [0, " + std::to_string(length()) + "], got " + std::to_string(len));
  tokens_.resize(static_cast<size_t>(len));
  cached_ = std::min(cached_, len);
}

void LlamaInfer::ensure_capacity(int64_t total) {
  if (total <= capacity_) return;
  const int64_t cap = std::max<int64_t>({total, 2 * capacity_, 64});
  const size_t row = static_cast<size_t>(cfg_.kv_heads * cfg_.head_dim);
  for (int64_t l = 0; l < cfg_.layers; ++l) {
    k_[l].resize(static_cast<size_t>(cap) * row);
    v_[l].resize(static_cast<size_t>(cap) * row);
  }
  capacity_ = cap;
}

void LlamaInfer::ensure_scratch(int64_t m) {
  const int64_t r = std::max<int64_t>(lora_rank_, 1);
  if (m <= scratch_m_ && r <= scratch_r_) return;
  m = std::max(m, scratch_m_);
  const int64_t D = cfg_.hidden, I = cfg_.intermediate, QD = cfg_.heads * cfg_.head_dim;
  // x, xn: [m, D]; q, att: [m, QD]; gate, up: [m, I]; lse: [H, m]; rstd: [m * H]; u: [m, r]
  const int64_t sizes[] = {m * D, m * D, m * QD, m * QD, m * I, m * I, cfg_.heads * m, m * cfg_.heads, m * r};
  int64_t total = 0;
  for (int64_t s : sizes) total += s;
  scratch_.assign(static_cast<size_t>(total), 0.f);
  float* p = scratch_.data();
  float** dst[] = {&x_, &xn_, &q_, &att_, &gate_, &up_, &lse_, &rstd_, &u_};
  for (size_t i = 0; i < 9; ++i) {
    *dst[i] = p;
    p += sizes[i];
  }
  scratch_m_ = m;
  scratch_r_ = r;
}

void LlamaInfer::append(const int32_t* tokens, int64_t n, float* logits, bool all_logits) {
  if (n < 1) throw ShapeError("append: at least one token is needed");
  for (int64_t i = 0; i < n; ++i)
    if (tokens[i] < 0 || tokens[i] >= cfg_.vocab)
      throw ShapeError("append: tokens[" + std::to_string(i) + "] = " + std::to_string(tokens[i]) + " is outside [0, " +
                       std::to_string(cfg_.vocab) + ")");
  const int64_t before = length();
  const int64_t total = before + n;
  // Rows below `from` hold valid keys and values; recompute everything when the cached ones were
  // made with other frequencies or adapters.
  int64_t from = std::min(cached_, before);
  const AdapterState st = adapter_state();
  if (!(st == cached_adapters_)) from = 0;
  if (cfg_.rope.type == RopeType::kDynamic) {
    std::vector<double> table(inv_freq_.size());
    rope_inv_freq(table.data(), cfg_.rope, cfg_.head_dim, total);
    if (table != inv_freq_) {
      inv_freq_ = std::move(table);
      from = 0;
    }
  }
  cached_adapters_ = st;
  cached_ = from;
  tokens_.insert(tokens_.end(), tokens, tokens + n);
  try {
    bind_adapters();
    ensure_capacity(total);
    // The rows the caller asked for are the last n; a recomputation of earlier tokens writes none.
    const int64_t first_out = before;
    for (int64_t c0 = from; c0 < total; c0 += kChunk) {
      const int64_t m = std::min(kChunk, total - c0);
      if (c0 + m <= first_out) {
        run_chunk(c0, m, nullptr, 0);
      } else if (all_logits) {
        const int64_t lo = std::max(first_out, c0) - c0;
        run_chunk(c0, m, logits + (c0 + lo - first_out) * cfg_.vocab, lo);
      } else {
        run_chunk(c0, m, c0 + m == total ? logits : nullptr, m - 1);
      }
    }
  } catch (...) {
    // a failed call leaves the tokens as they were; rows from `from` on are recomputed next time
    tokens_.resize(static_cast<size_t>(before));
    throw;
  }
  cached_ = total;
}

void LlamaInfer::run_chunk(int64_t from, int64_t m, float* out, int64_t first_row) {
  ensure_scratch(m);
  const int64_t D = cfg_.hidden, I = cfg_.intermediate, H = cfg_.heads, Hkv = cfg_.kv_heads, d = cfg_.head_dim;
  const int64_t QD = H * d, KD = Hkv * d;
  pos_.resize(static_cast<size_t>(m));
  for (int64_t i = 0; i < m; ++i) pos_[i] = static_cast<int32_t>(from + i);
  const bool lora = !adapters_.empty();
  auto adapter = [&](int64_t l, int mod, float* y, const float* x, int64_t in, int64_t outd) {
    if (!lora) return;
    const Adapter& a = adapters_[static_cast<size_t>(l * kLoraModules + mod)];
    if (a.A) lora_forward(y, u_, x, a.A, a.B, m, in, outd, lora_rank_, lora_scale_);
  };

  embedding_forward(x_, tokens_.data() + from, embed_, m, cfg_.vocab, D);
  for (int64_t l = 0; l < cfg_.layers; ++l) {
    const Layer& p = layers_[static_cast<size_t>(l)];
    const int64_t window = cfg_.layer_window.empty() ? 0 : cfg_.layer_window[static_cast<size_t>(l)];
    float* kc = k_[l].data();
    float* vc = v_[l].data();
    float* kn = kc + from * KD;  // this chunk's rows of the cache
    float* vn = vc + from * KD;
    rmsnorm_forward(xn_, rstd_, x_, p.ln1, m, D, cfg_.rms_eps);
    linear_forward(q_, xn_, p.wq, p.bq, m, D, QD);
    linear_forward(kn, xn_, p.wk, p.bk, m, D, KD);
    linear_forward(vn, xn_, p.wv, p.bv, m, D, KD);
    adapter(l, kLoraQ, q_, xn_, D, QD);
    adapter(l, kLoraK, kn, xn_, D, KD);
    adapter(l, kLoraV, vn, xn_, D, KD);
    if (cfg_.qk_norm) {
      rmsnorm_forward(q_, rstd_, q_, p.qn, m * H, d, cfg_.rms_eps);
      rmsnorm_forward(kn, rstd_, kn, p.kn, m * Hkv, d, cfg_.rms_eps);
    }
    rope_forward_table(q_, pos_.data(), m, H, d, inv_freq_.data(), rope_scale_);
    rope_forward_table(kn, pos_.data(), m, Hkv, d, inv_freq_.data(), rope_scale_);
    if (from == 0) {
      const AttnShape sh{m, H, Hkv, d, /*causal=*/true, /*scale: 1/sqrt(d)*/ 0.f, window};
      flash_attention_forward(att_, lse_, q_, kc, vc, nullptr, 0, sh);
    } else {
      attention_cached_forward(att_, q_, kc, vc, m, from, H, Hkv, d, window, 0.f);
    }
    // h = x + att Wo^T (+ bo) (+ adapter), in place on the residual stream
    matmul(x_, att_, p.wo, m, D, QD, false, true, 1.f, 1.f);
    if (p.bo) AddRowBias(x_, p.bo, m, D);
    adapter(l, kLoraO, x_, att_, QD, D);
    rmsnorm_forward(xn_, rstd_, x_, p.ln2, m, D, cfg_.rms_eps);
    linear_forward(gate_, xn_, p.wg, nullptr, m, D, I);
    linear_forward(up_, xn_, p.wu, nullptr, m, D, I);
    adapter(l, kLoraGate, gate_, xn_, D, I);
    adapter(l, kLoraUp, up_, xn_, D, I);
    swiglu_forward(gate_, gate_, up_, m * I);  // act overwrites gate (elementwise)
    matmul(x_, gate_, p.wd, m, D, I, false, true, 1.f, 1.f);
    adapter(l, kLoraDown, x_, gate_, I, D);
  }
  if (!out) return;
  const int64_t rows = m - first_row;
  rmsnorm_forward(xn_, rstd_, x_ + first_row * D, norm_, rows, D, cfg_.rms_eps);
  matmul(out, xn_, head_, rows, cfg_.vocab, D, false, true, 1.f, 0.f);
}

int64_t LlamaInfer::cache_bytes() const {
  int64_t floats = static_cast<int64_t>(scratch_.size());
  for (int64_t l = 0; l < cfg_.layers; ++l) floats += static_cast<int64_t>(k_[l].size() + v_[l].size());
  return floats * static_cast<int64_t>(sizeof(float)) + static_cast<int64_t>(tokens_.size() * sizeof(int32_t));
}

}  // namespace ua
