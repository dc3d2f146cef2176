// The Ulysses layouts over a device group (device_group.cuh), the api.h entry points for groups,
// and their host-buffer collectives for tests.
#include <algorithm>
#include <vector>

#include "comm/ulysses.h"
#include "cuda/comm/device_group.cuh"
#include "cuda/kernels/kernels.cuh"

namespace ua::cuda {

int64_t ulysses_scratch_floats(int64_t P, int64_t s, int64_t H, int64_t Hkv, int64_t d) {
  const int64_t hl = H / std::max<int64_t>(P, 1), hg = comm::kv_heads_per_rank(Hkv, P);
  return P * s * std::max(hl, hg) * d;
}

void ulysses_seq_to_head(DeviceGroup& g, float* out, const float* x, int64_t s, int64_t H, int64_t d, float* scratch,
                         cudaStream_t st) {
  const int64_t P = g.size();
  comm::check_heads(H, P);
  const int64_t hl = H / P;
  // what rank r receives from source i lands at rows [i*s, (i+1)*s): out is the receive buffer
  pack_heads(scratch, x, s, H, d, hl, P, false, st);
  g.all_to_all(scratch, out, static_cast<size_t>(s * hl * d) * sizeof(float), st);
}

void ulysses_head_to_seq(DeviceGroup& g, float* out, const float* y, int64_t s, int64_t H, int64_t d, float* scratch,
                         cudaStream_t st) {
  const int64_t P = g.size();
  comm::check_heads(H, P);
  const int64_t hl = H / P;
  // rows [i*s, (i+1)*s) of y belong to rank i's tokens: y is already in send order
  g.all_to_all(y, scratch, static_cast<size_t>(s * hl * d) * sizeof(float), st);
  unpack_heads(out, scratch, s, H, d, hl, P, st);
}

void ulysses_seq_to_head_kv(DeviceGroup& g, float* out, const float* x, int64_t s, int64_t Hkv, int64_t d,
                            float* scratch, cudaStream_t st) {
  const int64_t P = g.size(), hg = comm::kv_heads_per_rank(Hkv, P);
  pack_heads(scratch, x, s, Hkv, d, hg, P, Hkv % P != 0, st);
  g.all_to_all(scratch, out, static_cast<size_t>(s * hg * d) * sizeof(float), st);
}

void ulysses_head_to_seq_kv_sum(DeviceGroup& g, float* out, const float* y, int64_t s, int64_t Hkv, int64_t d,
                                float* scratch, cudaStream_t st) {
  const int64_t P = g.size(), hg = comm::kv_heads_per_rank(Hkv, P);
  g.all_to_all(y, scratch, static_cast<size_t>(s * hg * d) * sizeof(float), st);
  if (Hkv % P == 0) unpack_heads(out, scratch, s, Hkv, d, hg, P, st);
  else unpack_kv_sum(out, scratch, s, Hkv, d, P, st);
}

GroupInfo group_info(const DeviceGroup& g) {
  GroupInfo i;
  i.rank = g.rank();
  i.size = g.size();
  i.device = g.device();
  i.failed = g.failed();
  i.transport = g.transport();
  return i;
}

void group_close(DeviceGroup& g) { g.close(); }

void group_collective_host(DeviceGroup& g, const std::string& op, const void* in, void* out, int64_t bytes, int root) {
  use_device(g.device());
  Stream st;
  const int64_t P = g.size();
  if (op == "barrier") return g.barrier();
  const int64_t in_bytes = op == "allToAll" || op == "reduceScatterSum" ? P * bytes : bytes;
  const int64_t out_bytes = op == "allGather" || op == "allToAll" ? P * bytes : bytes;
  if (op == "reduceScatterSum" && bytes % 4 != 0) throw ShapeError("reduceScatterSum: bytes must be whole floats");
  DeviceArray<uint8_t> din(in_bytes), dout(out_bytes);
  din.upload(static_cast<const uint8_t*>(in), in_bytes, st.get());
  if (op == "allReduceSum") {
    g.all_reduce_sum(reinterpret_cast<float*>(din.get()), static_cast<size_t>(bytes / 4), st.get());
    din.download(static_cast<uint8_t*>(out), bytes, st.get());
  } else if (op == "broadcast") {
    g.broadcast(din.get(), static_cast<size_t>(bytes), root, st.get());
    din.download(static_cast<uint8_t*>(out), bytes, st.get());
  } else if (op == "allGather") {
    g.all_gather(din.get(), dout.get(), static_cast<size_t>(bytes), st.get());
    dout.download(static_cast<uint8_t*>(out), out_bytes, st.get());
  } else if (op == "allToAll") {
    g.all_to_all(din.get(), dout.get(), static_cast<size_t>(bytes), st.get());
    dout.download(static_cast<uint8_t*>(out), out_bytes, st.get());
  } else if (op == "reduceScatterSum") {
    g.reduce_scatter_sum(reinterpret_cast<const float*>(din.get()), reinterpret_cast<float*>(dout.get()),
                         static_cast<size_t>(bytes / 4), st.get());
    dout.download(static_cast<uint8_t*>(out), out_bytes, st.get());
  } else {
    throw CodedError("ERR_ARG", "group collective: unknown op '" + op +
                                    "' (allReduceSum, reduceScatterSum, allGather, allToAll, broadcast, barrier)");
  }
  st.sync();
}

void group_ulysses_host(DeviceGroup& g, int kind, float* out, int64_t out_count, const float* x, int64_t s, int64_t H,
                        int64_t d) {
  use_device(g.device());
  Stream st;
  const int64_t P = g.size();
  if (kind < 0 || kind > 3) throw CodedError("ERR_ARG", "ulysses: kind must be 0..3");
  const bool kv = kind >= 2;
  const int64_t hpr = kv ? comm::kv_heads_per_rank(H, P) : (comm::check_heads(H, P), H / P);
  const int64_t head_side = P * s * hpr * d, seq_side = s * H * d;
  const bool to_head = kind == 0 || kind == 2;
  const int64_t in_count = to_head ? seq_side : head_side, want = to_head ? head_side : seq_side;
  if (out_count != want)
    throw ShapeError("ulysses: out has " + std::to_string(out_count) + " floats, expected " + std::to_string(want));
  DeviceArray<float> din(in_count), dout(want), scratch(ulysses_scratch_floats(P, s, H, H, d));
  din.upload(x, in_count, st.get());
  if (kind == 0) ulysses_seq_to_head(g, dout.get(), din.get(), s, H, d, scratch.get(), st.get());
  else if (kind == 1) ulysses_head_to_seq(g, dout.get(), din.get(), s, H, d, scratch.get(), st.get());
  else if (kind == 2) ulysses_seq_to_head_kv(g, dout.get(), din.get(), s, H, d, scratch.get(), st.get());
  else ulysses_head_to_seq_kv_sum(g, dout.get(), din.get(), s, H, d, scratch.get(), st.get());
  dout.download(out, want, st.get());
  st.sync();
}

}  // namespace ua::cuda
