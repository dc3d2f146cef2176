// The CUDA model (api.h CudaModel, state in impl.cuh): construction from the host model's view
// table, the activation arena, host <-> device synchronization, and forward / backward around
// the layers of cuda_layers.cu, in the CPU model's order (model/llama.cc).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "cuda/model/impl.cuh"
#include "kernels/lm_head_ce.h"

namespace ua::cuda {

namespace {

// Sub-buffers start on 64-byte boundaries, as the CPU model's do (model/flat_buffer.h).
int64_t RoundUp(int64_t x) { return (x + 15) / 16 * 16; }

int SelectDevice(int device) {
  use_device(device);
  return device;
}

}  // namespace

CudaModel::Impl::Impl(std::shared_ptr<LlamaModel> h, const ModelOptions& o)
    : host(std::move(h)), cfg(host->config()), device(SelectDevice(o.device)), bf16(o.bf16), blas(stream.get()) {
  if (host->has_lora())
    throw CodedError("ERR_CONFIG", "device cuda: LoRA adapters are not implemented on the CUDA engine yet; use device: cpu");
  if (cfg.head_dim > kMaxHeadDim)
    throw CodedError("ERR_CONFIG", "device cuda: head_dim " + std::to_string(cfg.head_dim) + " exceeds the CUDA attention's " +
                                       std::to_string(kMaxHeadDim));
  flat = host->flat_size();
  map_views();
  reg_params = std::make_unique<HostRegistration>(host->params()->data, static_cast<size_t>(flat) * sizeof(float));
  reg_grads = std::make_unique<HostRegistration>(host->grads()->data, static_cast<size_t>(flat) * sizeof(float));
  params.reserve(flat);
  grads.reserve(flat);
  if (bf16) params16.reserve(flat);
  attn = std::make_unique<LocalAttention>();
  inv_freq.assign(static_cast<size_t>(cfg.head_dim / 2), 0.0);
  RopeScaling r = cfg.rope;
  r.theta = cfg.rope_theta;
  rope_inv_freq(inv_freq.data(), r, cfg.head_dim, 0);
  rope_scale = r.attention_factor;
  inv_freq_dev.upload(inv_freq.data(), static_cast<int64_t>(inv_freq.size()), stream.get());
  stream.sync();
}

void CudaModel::Impl::map_views() {
  std::map<std::string, int64_t> off;
  for (const auto& v : host->views()) off[v.name] = v.offset;
  auto at = [&](const std::string& name) {
    auto it = off.find(name);
    return it == off.end() ? int64_t(-1) : it->second;
  };
  auto need = [&](const std::string& name) {
    const int64_t o = at(name);
    if (o < 0) throw CodedError("ERR_STATE", "device cuda: the model has no tensor " + name);
    return o;
  };
  embed = need("model.embed_tokens.weight");
  norm = need("model.norm.weight");
  lm = cfg.tie_embeddings ? embed : need("lm_head.weight");
  layers.resize(static_cast<size_t>(cfg.layers));
  for (int64_t l = 0; l < cfg.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    LayerOff& o = layers[l];
    o.ln1 = need(p + "input_layernorm.weight");
    o.wq = need(p + "self_attn.q_proj.weight");
    o.wk = need(p + "self_attn.k_proj.weight");
    o.wv = need(p + "self_attn.v_proj.weight");
    o.wo = need(p + "self_attn.o_proj.weight");
    o.bq = at(p + "self_attn.q_proj.bias");
    o.bk = at(p + "self_attn.k_proj.bias");
    o.bv = at(p + "self_attn.v_proj.bias");
    o.bo = at(p + "self_attn.o_proj.bias");
    o.qn = cfg.qk_norm ? need(p + "self_attn.q_norm.weight") : -1;
    o.kn = cfg.qk_norm ? need(p + "self_attn.k_norm.weight") : -1;
    o.ln2 = need(p + "post_attention_layernorm.weight");
    o.wg = need(p + "mlp.gate_proj.weight");
    o.wu = need(p + "mlp.up_proj.weight");
    o.wd = need(p + "mlp.down_proj.weight");
  }
}

void CudaModel::Impl::ensure_buffers(int64_t nt) {
  if (buf_n == nt && buf_ckpt == checkpointing && arena.get()) return;
  const int64_t D = cfg.hidden, I = cfg.intermediate, QD = cfg.heads * cfg.head_dim, KD = cfg.kv_heads * cfg.head_dim;
  const int64_t lse = cfg.heads * nt;  // local [H, n], Ulysses [H/P, P*n]: the same count
  const int64_t qk = cfg.qk_norm ? RoundUp(nt * QD) + RoundUp(nt * KD) + RoundUp(nt * cfg.heads) + RoundUp(nt * cfg.kv_heads) : 0;
  const int64_t full = RoundUp(nt * D) * 4 + RoundUp(nt) * 2 + RoundUp(nt * QD) * 2 + RoundUp(nt * KD) * 2 + RoundUp(lse) +
                       RoundUp(nt * I) * 2 + qk;
  const int64_t per_layer = checkpointing ? RoundUp(nt * D) : full;
  int64_t total = per_layer * cfg.layers + (checkpointing ? full : 0);
  total += RoundUp(nt * D) * 3 + RoundUp(nt) * 4;  // xfinal, hn, dres; rstdf, lse_ce, loss_tok, tok_weight
  total += RoundUp(nt * I) * 3 + RoundUp(nt * D) + RoundUp(nt * QD) * 2 + RoundUp(nt * KD) * 3;  // scratch
  arena.release();
  arena.reserve(total);
  float* p = arena.get();
  auto take = [&](int64_t count) {
    float* r = p;
    p += RoundUp(count);
    return r;
  };
  layer_base.assign(static_cast<size_t>(cfg.layers), nullptr);
  for (int64_t l = 0; l < cfg.layers; ++l) layer_base[l] = take(per_layer);
  recompute_base = checkpointing ? take(full) : nullptr;
  xfinal = take(nt * D);
  hn = take(nt * D);
  dres = take(nt * D);
  rstdf = take(nt);
  lse_ce = take(nt);
  loss_tok = take(nt);
  tok_weight = take(nt);
  s_act = take(nt * I);
  s_dg = take(nt * I);
  s_du = take(nt * I);
  s_dD = take(nt * D);
  s_dq = take(nt * QD);
  s_dq2 = take(nt * QD);
  s_dk = take(nt * KD);
  s_dv = take(nt * KD);
  s_dk2 = take(nt * KD);
  if (bf16)
    for (auto& b : act16) b.reserve(nt * std::max({D, I, QD, KD}));
  reduce_scratch.reserve(std::max(rmsnorm_scratch(nt * std::max(cfg.heads, int64_t(1)), std::max(D, cfg.head_dim)),
                                  column_sum_scratch(nt, std::max({D, QD, KD}))));
  argmax.reserve(nt);
  buf_n = nt;
  buf_ckpt = checkpointing;
}

CudaModel::Impl::Acts CudaModel::Impl::acts_for(int64_t l) {
  const int64_t nt = buf_n, D = cfg.hidden, I = cfg.intermediate, QD = cfg.heads * cfg.head_dim,
                KD = cfg.kv_heads * cfg.head_dim;
  float* p = buf_ckpt ? recompute_base : layer_base[l];
  auto take = [&](int64_t count) {
    float* r = p;
    p += RoundUp(count);
    return r;
  };
  Acts a{};
  a.x = take(nt * D);
  a.xn1 = take(nt * D);
  a.h = take(nt * D);
  a.xn2 = take(nt * D);
  a.rstd1 = take(nt);
  a.rstd2 = take(nt);
  a.q = take(nt * QD);
  a.att = take(nt * QD);
  a.k = take(nt * KD);
  a.v = take(nt * KD);
  a.lse = take(cfg.heads * nt);
  a.gate = take(nt * I);
  a.up = take(nt * I);
  if (cfg.qk_norm) {
    a.qpre = take(nt * QD);
    a.kpre = take(nt * KD);
    a.rstdq = take(nt * cfg.heads);
    a.rstdk = take(nt * cfg.kv_heads);
  }
  if (buf_ckpt) a.x = layer_base[l];
  return a;
}

CudaModel::CudaModel(std::shared_ptr<LlamaModel> host, const ModelOptions& o) : impl_(std::make_unique<Impl>(std::move(host), o)) {}
CudaModel::~CudaModel() {
  if (impl_) cudaSetDevice(impl_->device);  // buffers are freed on their own device
}

ForwardResult CudaModel::forward(const int32_t* tokens, const int32_t* labels, const int32_t* positions, int64_t n,
                                 const int32_t* doc_lens, int64_t ndocs, float normalizer, float* token_loss,
                                 int32_t* token_argmax) {
  Impl& m = *impl_;
  use_device(m.device);
  m.has_forward = false;
  const LlamaConfig& c = m.cfg;
  if (n <= 0) throw ShapeError("forward: the sequence must hold at least one token");
  if (!(normalizer > 0) || !std::isfinite(normalizer)) throw ShapeError("forward: normalizer must be > 0");
  for (int64_t i = 0; i < n; ++i) {
    if (tokens[i] < 0 || tokens[i] >= c.vocab)
      throw ShapeError("forward: tokens[" + std::to_string(i) + "] = " + std::to_string(tokens[i]) + " is outside [0, " +
                       std::to_string(c.vocab) + ")");
    if (labels[i] >= c.vocab || (labels[i] < 0 && labels[i] != kIgnoreIndex))
      throw ShapeError("forward: labels[" + std::to_string(i) + "] = " + std::to_string(labels[i]) +
                       " is neither -100 nor in [0, " + std::to_string(c.vocab) + ")");
    if (positions[i] < 0) throw ShapeError("forward: positions[" + std::to_string(i) + "] is negative");
  }
  const int64_t attended = m.attn->attended_tokens(n);
  // every window's visibility ranges over the attended sequence, from the documents
  std::vector<int32_t> docs(doc_lens, doc_lens + std::max<int64_t>(ndocs, 0));
  if (docs != m.doc_lens || m.masks.empty() || m.buf_n != n) {
    m.masks.clear();
    m.doc_lens = docs;
  }
  for (int64_t l = 0; l < c.layers; ++l) {
    const int64_t w = c.layer_window.empty() ? 0 : c.layer_window[l];
    if (m.masks.count(w)) continue;
    m.masks[w].upload(attention_mask(docs.data(), ndocs, attended, true, w), m.stream.get());
  }
  m.ensure_buffers(n);
  cudaStream_t s = m.stream.get();
  m.timed(kCpTransfer, [&] {
    m.params.upload(m.host->params()->data, m.flat, s);
    m.tokens.upload(tokens, n, s);
    m.labels.upload(labels, n, s);
    m.positions.upload(positions, n, s);
  });
  if (m.bf16) m.timed(kCpCopy, [&] { f32_to_bf16(m.params16.get(), m.params.get(), m.flat, s); });
  const EmbeddingPlan plan = embedding_plan(tokens, n, c.vocab);
  m.plan_unique = static_cast<int64_t>(plan.ids.size());
  m.plan_ids.upload(plan.ids.data(), m.plan_unique, s);
  m.plan_offsets.upload(plan.offsets.data(), m.plan_unique + 1, s);
  m.plan_tokens.upload(plan.tokens.data(), n, s);
  if (c.rope.type == RopeType::kDynamic) {
    int64_t local = 0;
    for (int64_t i = 0; i < n; ++i) local = std::max<int64_t>(local, int64_t(positions[i]) + 1);
    const int64_t len = m.attn->sequence_max(local);
    if (len != m.rope_len) {
      RopeScaling r = c.rope;
      r.theta = c.rope_theta;
      rope_inv_freq(m.inv_freq.data(), r, c.head_dim, len);
      m.inv_freq_dev.upload(m.inv_freq.data(), static_cast<int64_t>(m.inv_freq.size()), s);
      m.rope_len = len;
    }
  }
  m.n = n;
  m.normalizer = normalizer;
  m.labels_host.assign(labels, labels + n);

  const int64_t D = c.hidden, V = c.vocab;
  m.timed(kCpEmbed, [&] { embedding_forward(m.layer_base[0], m.tokens.get(), m.params.get() + m.embed, n, D, s); });
  for (int64_t l = 0; l < c.layers; ++l) {
    Impl::Acts a = m.acts_for(l);
    m.layer_forward(l, a, l + 1 < c.layers ? m.layer_base[l + 1] : m.xfinal);
  }
  m.timed(kCpNorm, [&] { rmsnorm_forward(m.hn, m.rstdf, m.xfinal, m.params.get() + m.norm, n, D, c.rms_eps, s); });
  m.timed(kCpHeadFwd, [&] {
    m.head.forward(m.blas, m.loss_tok, m.lse_ce, token_argmax ? m.argmax.get() : nullptr, m.operand(m.hn, n * D, 0),
                   m.weight(m.lm), m.precision(), m.labels.get(), n, D, V, s);
  });
  std::vector<float> tl(static_cast<size_t>(n));
  m.timed(kCpTransfer, [&] {
    UA_CUDA(cudaMemcpyAsync(tl.data(), m.loss_tok, n * sizeof(float), cudaMemcpyDeviceToHost, s));
    if (token_argmax) m.argmax.download(token_argmax, n, s);
    m.stream.sync();
  });
  if (token_loss) std::memcpy(token_loss, tl.data(), static_cast<size_t>(n) * sizeof(float));
  // the CPU's loss: valid tokens in order, summed in double, over the normalizer
  ForwardResult r;
  double total = 0;
  for (int64_t i = 0; i < n; ++i)
    if (labels[i] >= 0) {
      total += tl[i];
      ++r.valid;
    }
  r.loss = total / normalizer;
  m.has_forward = true;
  return r;
}

void CudaModel::backward(const float* token_weight) {
  Impl& m = *impl_;
  if (!m.has_forward) throw CodedError("ERR_STATE", "backward: no forward since the last backward");
  m.has_forward = false;
  use_device(m.device);
  const LlamaConfig& c = m.cfg;
  const int64_t n = m.n, D = c.hidden, V = c.vocab;
  cudaStream_t s = m.stream.get();
  std::vector<float> w(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    w[i] = m.labels_host[i] < 0 ? 0.f : (token_weight ? token_weight[i] : 1.f / m.normalizer);
  m.timed(kCpTransfer, [&] {
    UA_CUDA(cudaMemcpyAsync(m.tok_weight, w.data(), n * sizeof(float), cudaMemcpyHostToDevice, s));
    // the device gradients start from the host's: backward adds into them, as the CPU model's does
    m.grads.upload(m.host->grads()->data, m.flat, s);
  });
  float* g = m.grads.get();
  float* dhn = m.s_dD;
  m.timed(kCpCopy, [&] { UA_CUDA(cudaMemsetAsync(dhn, 0, n * D * sizeof(float), s)); });
  m.timed(kCpHeadBwd, [&] {
    m.head.backward(m.blas, dhn, g + m.lm, m.operand(m.hn, n * D, 0), m.weight(m.lm), m.precision(), m.labels.get(),
                    m.lse_ce, m.tok_weight, n, D, V, s);
  });
  m.timed(kCpCopy, [&] { UA_CUDA(cudaMemsetAsync(m.dres, 0, n * D * sizeof(float), s)); });
  m.timed(kCpNorm, [&] {
    rmsnorm_backward(m.dres, g + m.norm, dhn, m.xfinal, m.params.get() + m.norm, m.rstdf, n, D, m.reduce_scratch.get(), s);
  });
  for (int64_t l = c.layers - 1; l >= 0; --l) {
    Impl::Acts a = m.acts_for(l);
    if (m.buf_ckpt) {
      m.recomputing = true;
      m.layer_forward(l, a, nullptr);
      m.recomputing = false;
    }
    m.layer_backward(l, a, m.dres);
  }
  m.timed(kCpEmbed, [&] {
    embedding_backward(g + m.embed, m.dres, m.plan_ids.get(), m.plan_offsets.get(), m.plan_tokens.get(), m.plan_unique, D, s);
  });
  m.timed(kCpTransfer, [&] {
    m.grads.download(m.host->grads()->data, m.flat, s);
    m.stream.sync();
  });
}

void CudaModel::zero_grad() {
  // the gradients live on the host between calls (backward uploads them first)
  impl_->host->zero_grad();
}

bool CudaModel::has_forward() const { return impl_->has_forward; }
void CudaModel::set_checkpointing(bool on) { impl_->checkpointing = on; }
void CudaModel::set_profiling(bool on) { impl_->profiling = on; }
void CudaModel::reset_profile() {
  for (double& x : impl_->profile) x = 0;
}

std::vector<std::pair<std::string, double>> CudaModel::profile() const {
  std::vector<std::pair<std::string, double>> out;
  for (int cat = 0; cat < kCpRecompute + 1; ++cat) out.emplace_back(profile_name(cat), impl_->profile[cat]);
  out.emplace_back("host_transfer", impl_->profile[kCpTransfer]);
  return out;
}

int64_t CudaModel::activation_bytes() const {
  const Impl& m = *impl_;
  return m.arena.bytes() + m.head.bytes() + m.attn->buffer_bytes() + m.act16[0].bytes() + m.act16[1].bytes() +
         m.reduce_scratch.bytes();
}

int64_t CudaModel::attended_tokens(int64_t n) const { return impl_->attn->attended_tokens(n); }

void CudaModel::set_sequence_parallel(std::shared_ptr<DeviceGroup> g) {
  Impl& m = *impl_;
  if (m.has_forward) throw CodedError("ERR_STATE", "setSequenceParallel: a forward awaits its backward; run backward first");
  use_device(m.device);
  if (g) {
    auto u = std::make_unique<UlyssesCudaAttention>(g, m.cfg.heads, m.cfg.kv_heads);
    m.ulysses = u.get();
    m.attn = std::move(u);
  } else {
    m.attn = std::make_unique<LocalAttention>();
    m.ulysses = nullptr;
  }
  m.masks.clear();
  m.buf_n = -1;
}

bool CudaModel::sequence_parallel() const { return impl_->ulysses != nullptr; }

SequenceParallelStats CudaModel::sequence_parallel_stats(bool reset) {
  Impl& m = *impl_;
  if (!m.ulysses) return SequenceParallelStats{};
  SequenceParallelStats s = m.ulysses->stats();
  if (reset) m.ulysses->reset_stats();
  return s;
}

int CudaModel::device() const { return impl_->device; }

}  // namespace ua::cuda
