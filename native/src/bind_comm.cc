// Bindings for the communicator (comm/): connect/split/close, the collectives, the Ulysses layouts
// and the memcpy baseline of `bench alltoall`. Thin: validation here, work in comm/ off the main
// thread. Also the JS-backed rendezvous store: its set/get/wait run on a worker thread (Gloo's
// connect) and call into JS through a ThreadSafeFunction, waiting for the JS promise with a deadline.
// Must never block the main thread on the network, never let a C++ exception escape, and never
// touch JS values from a worker thread.
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>

#include "comm/communicator.h"
#include "comm/ulysses.h"
#include "napi_util.h"

namespace ua {

namespace {

using comm::Communicator;
using comm::Millis;

constexpr uint32_t kHandleMagic = 0x636f6d6d;  // "comm"

struct Handle {
  uint32_t magic = kHandleMagic;
  std::shared_ptr<Communicator> comm;
};

std::shared_ptr<Communicator> GetComm(const Napi::CallbackInfo& info, size_t i) {
  Napi::Value v = info[i];
  if (!v.IsExternal()) Fail("ERR_ARG", "communicator: expected a communicator handle");
  auto* h = v.As<Napi::External<Handle>>().Data();
  if (!h || h->magic != kHandleMagic) Fail("ERR_ARG", "communicator: expected a communicator handle");
  if (!h->comm) Fail("ERR_COMM_CLOSED", "communicator: the handle was released");
  return h->comm;
}

Napi::Value MakeHandle(Napi::Env env, std::shared_ptr<Communicator> c) {
  return Napi::External<Handle>::New(env, new Handle{kHandleMagic, std::move(c)}, [](Napi::Env, Handle* h) { delete h; });
}

// Any typed array as raw bytes.
struct Bytes {
  uint8_t* data = nullptr;
  size_t bytes = 0;
  size_t element = 1;
  napi_typedarray_type type = napi_uint8_array;
  Napi::Value js;
};

Bytes GetBytes(const Napi::CallbackInfo& info, size_t i, const char* what) {
  Napi::Value v = info[i];
  if (!v.IsTypedArray()) Fail("ERR_DTYPE", std::string(what) + ": expected a typed array");
  Napi::TypedArray ta = v.As<Napi::TypedArray>();
  Bytes b;
  b.data = static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
  b.bytes = ta.ByteLength();
  b.element = ta.ElementSize();
  b.type = ta.TypedArrayType();
  b.js = v;
  return b;
}

// ---- JS-backed store -------------------------------------------------------------------------

struct StoreCall {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::string code, error;
  std::vector<char> value;
  void settle(std::string c, std::string err, std::vector<char> v) {
    std::lock_guard<std::mutex> lock(mu);
    if (done) return;
    done = true;
    code = std::move(c);
    error = std::move(err);
    value = std::move(v);
    cv.notify_all();
  }
};

struct StoreRequest {
  std::string op;
  std::vector<std::string> keys;
  std::vector<char> data;
  std::shared_ptr<StoreCall> call;
};

std::vector<char> ValueBytes(Napi::Value v) {
  if (!v.IsTypedArray()) return {};
  Napi::TypedArray ta = v.As<Napi::TypedArray>();
  const char* p = static_cast<const char*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
  return std::vector<char>(p, p + ta.ByteLength());
}

void SettleFromError(const std::shared_ptr<StoreCall>& call, Napi::Value err) {
  std::string msg = "JS store request failed", code = "ERR_COMM_STORE";
  if (err.IsObject()) {
    Napi::Object o = err.As<Napi::Object>();
    Napi::Value m = o.Get("message"), c = o.Get("code");
    if (m.IsString()) msg = m.As<Napi::String>().Utf8Value();
    if (c.IsString() && c.As<Napi::String>().Utf8Value().rfind("ERR_COMM_", 0) == 0) code = c.As<Napi::String>().Utf8Value();
  }
  call->settle(code, msg, {});
}

// Runs on the JS thread: calls request(op, key|keys, data) and settles the call from its result.
void CallStoreJs(Napi::Env env, Napi::Function fn, StoreRequest* raw) {
  std::unique_ptr<StoreRequest> req(raw);
  auto call = req->call;
  if (env == nullptr || fn == nullptr) {
    call->settle("ERR_COMM_STORE", "JS store: the JS environment is shutting down", {});
    return;
  }
  try {
    Napi::Value key;
    if (req->op == "wait") {
      Napi::Array a = Napi::Array::New(env, req->keys.size());
      for (size_t i = 0; i < req->keys.size(); i++) a.Set(static_cast<uint32_t>(i), req->keys[i]);
      key = a;
    } else {
      key = Napi::String::New(env, req->keys.at(0));
    }
    Napi::Value data = req->op == "set" ? Napi::Buffer<char>::Copy(env, req->data.data(), req->data.size()).As<Napi::Value>()
                                        : env.Undefined();
    Napi::Value r = fn.Call({Napi::String::New(env, req->op), key, data});
    if (r.IsPromise()) {
      Napi::Object p = r.As<Napi::Object>();
      Napi::Function onOk = Napi::Function::New(env, [call](const Napi::CallbackInfo& i) {
        call->settle("", "", ValueBytes(i[0]));
        return i.Env().Undefined();
      });
      Napi::Function onErr = Napi::Function::New(env, [call](const Napi::CallbackInfo& i) {
        SettleFromError(call, i[0]);
        return i.Env().Undefined();
      });
      p.Get("then").As<Napi::Function>().Call(p, {onOk, onErr});
    } else {
      call->settle("", "", ValueBytes(r));
    }
  } catch (const Napi::Error& e) {
    SettleFromError(call, e.Value());
  } catch (const std::exception& e) {
    call->settle("ERR_COMM_STORE", e.what(), {});
  }
}

// Owns the ThreadSafeFunction; called from Gloo's connecting (worker) thread. Node finalizes the
// TSFN itself at environment teardown (possibly before a communicator holding this bridge is
// collected): after that it must be neither called nor released, hence the shared flag.
class JsStoreBridge {
 public:
  JsStoreBridge(Napi::Env env, Napi::Function request) : life_(std::make_shared<Life>()) {
    auto life = life_;
    tsfn_ = Napi::ThreadSafeFunction::New(env, request, "ulysses-comm-store", 0, 1, [life](Napi::Env) {
      std::lock_guard<std::mutex> lock(life->mu);
      life->finalized = true;
    });
    // The store must not keep the process alive by itself; pending connects do.
    tsfn_.Unref(env);
  }
  ~JsStoreBridge() {
    std::lock_guard<std::mutex> lock(life_->mu);
    if (!life_->finalized) tsfn_.Release();
  }

  std::vector<char> call(const std::string& op, std::vector<std::string> keys, std::vector<char> data, Millis timeout) {
    auto call = std::make_shared<StoreCall>();
    std::string what = "JS store " + op + " '" + (keys.empty() ? "" : keys[0]) + "'";
    auto* req = new StoreRequest{op, std::move(keys), std::move(data), call};
    {
      std::lock_guard<std::mutex> lock(life_->mu);
      if (life_->finalized || tsfn_.NonBlockingCall(req, CallStoreJs) != napi_ok) {
        delete req;
        throw CodedError("ERR_COMM_STORE", what + ": the JS store is no longer reachable");
      }
    }
    std::unique_lock<std::mutex> lock(call->mu);
    if (!call->cv.wait_for(lock, timeout, [&] { return call->done; }))
      throw CodedError("ERR_COMM_TIMEOUT", what + ": no answer within " + std::to_string(timeout.count()) + " ms");
    if (!call->error.empty()) throw CodedError(call->code, what + ": " + call->error);
    return call->value;
  }

 private:
  struct Life {
    std::mutex mu;
    bool finalized = false;
  };
  std::shared_ptr<Life> life_;
  Napi::ThreadSafeFunction tsfn_;
};

std::shared_ptr<comm::Store> MakeJsStore(Napi::Env env, Napi::Function request, Millis timeout) {
  auto bridge = std::make_shared<JsStoreBridge>(env, request);
  comm::StoreCallbacks cb;
  cb.set = [bridge](const std::string& k, const std::vector<char>& v, Millis t) { bridge->call("set", {k}, v, t); };
  cb.get = [bridge](const std::string& k, Millis t) { return bridge->call("get", {k}, {}, t); };
  cb.wait = [bridge](const std::vector<std::string>& ks, Millis t) { bridge->call("wait", ks, {}, t); };
  return std::make_shared<comm::CallbackStore>(std::move(cb), timeout);
}

// ---- entry points ------------------------------------------------------------------------------

// commConnect(rank, size, store: string (file-store directory) | request function, timeoutMs, host,
//             sharedMemory)
Napi::Value Connect(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    int64_t size = GetInt(info, 1, "size", 1, 1 << 20);
    int64_t rank = GetInt(info, 0, "rank", 0, size - 1);
    int64_t timeout = GetInt(info, 3, "timeoutMs", 1);
    std::string host = info[4].IsString() ? info[4].As<Napi::String>().Utf8Value() : "127.0.0.1";
    bool shm = info[5].IsBoolean() ? info[5].As<Napi::Boolean>().Value() : true;
    std::shared_ptr<comm::Store> store;
    if (info[2].IsString()) {
      std::string dir = info[2].As<Napi::String>().Utf8Value();
      if (dir.empty()) Fail("ERR_ARG", "store: expected a directory path");
      store = comm::make_file_store(dir);
    } else if (info[2].IsFunction()) {
      store = MakeJsStore(info.Env(), info[2].As<Napi::Function>(), Millis(timeout));
    } else {
      Fail("ERR_ARG", "store: expected a directory path or a request function");
    }
    auto out = std::make_shared<std::shared_ptr<Communicator>>();
    return RunAsync(
        info.Env(), "commConnect",
        [=] { *out = Communicator::connect(int(rank), int(size), store, Millis(timeout), host, shm); },
        [out](Napi::Env env) { return MakeHandle(env, *out); }, {});
  });
}

// commSplit(handle, tag, members: Int32Array)
Napi::Value Split(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto c = GetComm(info, 0);
    if (!info[1].IsString()) Fail("ERR_ARG", "tag: expected a string");
    std::string tag = info[1].As<Napi::String>().Utf8Value();
    for (char ch : tag)
      if (!(isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-'))
        Fail("ERR_ARG", "tag: expected letters, digits, '_' or '-', got '" + tag + "'");
    auto m = GetArray<int32_t>(info, 2, "members");
    std::vector<int> members(m.data, m.data + m.length);
    auto out = std::make_shared<std::shared_ptr<Communicator>>();
    return RunAsync(
        info.Env(), "commSplit", [=] { *out = c->split(tag, members); },
        [out](Napi::Env env) { return MakeHandle(env, *out); }, {});
  });
}

Napi::Value Close(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto c = GetComm(info, 0);
    return RunAsync(info.Env(), "commClose", [c] { c->close(); }, nullptr, {});
  });
}

Napi::Value Info(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto c = GetComm(info, 0);
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("rank", c->rank());
    o.Set("size", c->size());
    o.Set("timeoutMs", static_cast<double>(c->timeout().count()));
    o.Set("failed", c->failed());
    o.Set("sharedMemory", c->uses_shared_memory());
    return o;
  });
}

Napi::Value AllReduceSum(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto c = GetComm(info, 0);
    auto x = GetArray<float>(info, 1, "x");
    float* p = x.data;
    size_t n = static_cast<size_t>(x.length);
    return RunAsync(info.Env(), "commAllReduceSum", [=] { c->all_reduce_sum(p, n); }, nullptr, {x.js});
  });
}

Napi::Value Broadcast(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto c = GetComm(info, 0);
    auto b = GetBytes(info, 1, "data");
    int64_t root = GetInt(info, 2, "root", 0, c->size() - 1);
    return RunAsync(info.Env(), "commBroadcast", [=] { c->broadcast(b.data, b.bytes, int(root)); }, nullptr, {b.js});
  });
}

Napi::Value Barrier(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto c = GetComm(info, 0);
    return RunAsync(info.Env(), "commBarrier", [c] { c->barrier(); }, nullptr, {});
  });
}

// commAllGather(handle, input, output): output is input's type with size * input.length elements.
Napi::Value AllGather(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto c = GetComm(info, 0);
    auto in = GetBytes(info, 1, "input"), out = GetBytes(info, 2, "output");
    if (in.type != out.type) Fail("ERR_DTYPE", "allGather: input and output must have the same type");
    if (out.bytes != in.bytes * size_t(c->size()))
      Fail("ERR_SHAPE", "allGather: output must hold size (" + std::to_string(c->size()) + ") x input (" +
                            std::to_string(in.bytes / in.element) + ") elements, got " +
                            std::to_string(out.bytes / out.element));
    return RunAsync(info.Env(), "commAllGather", [=] { c->all_gather(in.data, out.data, in.bytes); }, nullptr, {in.js, out.js});
  });
}

// commReduceScatterSum(handle, input: Float32Array, output: Float32Array[, block]): input holds
// size x output.length elements; output gets the sum of every rank's chunk `rank`, in rank order
// within blocks of `block` consecutive ranks (default 1), then over the blocks.
Napi::Value ReduceScatterSum(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto c = GetComm(info, 0);
    auto in = GetArray<float>(info, 1, "input"), out = GetArray<float>(info, 2, "output");
    const size_t P = size_t(c->size()), n = static_cast<size_t>(out.length);
    if (static_cast<size_t>(in.length) != n * P)
      Fail("ERR_SHAPE", "reduceScatterSum: input must hold size (" + std::to_string(P) + ") x output (" +
                            std::to_string(n) + ") elements, got " + std::to_string(in.length));
    const float* pi = in.data;
    float* po = out.data;
    if (n && pi < po + n && po < pi + n * P) Fail("ERR_ARG", "reduceScatterSum: input and output must not share memory");
    const int block = info.Length() > 3 && !info[3].IsUndefined() ? static_cast<int>(GetInt(info, 3, "block", 1, c->size())) : 1;
    if (c->size() % block != 0)
      Fail("ERR_COMM_ARG", "reduceScatterSum: block " + std::to_string(block) + " does not divide the size " + std::to_string(c->size()));
    return RunAsync(info.Env(), "commReduceScatterSum", [=] { c->reduce_scatter_sum(pi, po, n, block); }, nullptr, {in.js, out.js});
  });
}

Napi::Value AllToAll(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    auto c = GetComm(info, 0);
    auto in = GetBytes(info, 1, "input"), out = GetBytes(info, 2, "output");
    size_t P = size_t(c->size());
    if (in.type != out.type) Fail("ERR_DTYPE", "allToAll: input and output must have the same type");
    if (in.bytes != out.bytes || (in.bytes / in.element) % P != 0)
      Fail("ERR_SHAPE", "allToAll: input and output must have the same length, a multiple of size " +
                            std::to_string(P) + "; got " + std::to_string(in.bytes / in.element) + " and " +
                            std::to_string(out.bytes / out.element));
    if (in.data == out.data && in.bytes) Fail("ERR_ARG", "allToAll: input and output must not share memory");
    size_t chunk = in.bytes / P;
    return RunAsync(info.Env(), "commAllToAll", [=] { c->all_to_all(in.data, out.data, chunk); }, nullptr, {in.js, out.js});
  });
}

// commUlysses(kind, handle, out, x, s, H, d[, iters]): kind 0 seqToHead, 1 headToSeq, 2 seqToHeadKv,
// 3 headToSeqKvSum. With iters (benchmarks): runs the call `iters` times back to back on one worker
// thread, as the model's Ulysses attention issues them from native code, with the head-layout
// side in a communicator buffer as the attention keeps it (seq->head: output; head->seq: input,
// copied in before the timed calls; the output is copied to `out` after them), and resolves to
// the elapsed seconds of the calls.
Napi::Value Ulysses(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    int64_t kind = GetInt(info, 0, "kind", 0, 3);
    auto c = GetComm(info, 1);
    int64_t s = GetInt(info, 4, "s"), H = GetInt(info, 5, "H", 1), d = GetInt(info, 6, "d", 1);
    int64_t P = c->size();
    int64_t hg;
    if (kind < 2) {
      comm::check_heads(H, P);
      hg = H / P;
    } else {
      hg = comm::kv_heads_per_rank(H, P);
    }
    const bool to_head = kind == 0 || kind == 2;
    const int64_t local = s * H * d, spread = P * s * hg * d;
    auto out = GetArray<float>(info, 2, "out", to_head ? spread : local);
    auto x = GetArray<float>(info, 3, "x", to_head ? local : spread);
    if (out.data == x.data && out.length) Fail("ERR_ARG", "ulysses: out and x must not share memory");
    float* o = out.data;
    const float* p = x.data;
    const bool timed = info.Length() > 7 && !info[7].IsUndefined();
    const int64_t iters = timed ? GetInt(info, 7, "iters", 1, 1 << 20) : 1;
    auto seconds = std::make_shared<double>(0);
    const size_t out_bytes = static_cast<size_t>(out.length) * sizeof(float);
    const size_t x_bytes = static_cast<size_t>(x.length) * sizeof(float);
    return RunAsync(
        info.Env(), "commUlysses", [=] {
          comm::CommBuffer staged;
          float* dst = o;
          const float* src = p;
          if (timed && to_head) {
            staged = c->buffer(out_bytes);
            dst = staged.data();
          } else if (timed) {
            staged = c->buffer(x_bytes);
            std::memcpy(staged.data(), p, x_bytes);
            src = staged.data();
          }
          auto once = [&] {
            if (kind == 0) comm::seq_to_head(*c, dst, src, s, H, d);
            else if (kind == 1) comm::head_to_seq(*c, dst, src, s, H, d);
            else if (kind == 2) comm::seq_to_head_kv(*c, dst, src, s, H, d);
            else comm::head_to_seq_kv_sum(*c, dst, src, s, H, d);
          };
          // Training's buffers persist across calls: fault the staged pages in (on both sides)
          // before timing.
          if (timed) once();
          const auto t0 = std::chrono::steady_clock::now();
          for (int64_t i = 0; i < iters; ++i) once();
          *seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          if (dst != o) std::memcpy(o, dst, out_bytes);
        },
        timed ? std::function<Napi::Value(Napi::Env)>([seconds](Napi::Env env) { return Napi::Number::New(env, *seconds); })
              : nullptr,
        {out.js, x.js});
  });
}

// ulyssesKvHeadsPerRank(Hkv, P) -> number; throws ERR_COMM_ARG naming the numbers.
Napi::Value KvHeadsPerRank(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    int64_t Hkv = GetInt(info, 0, "Hkv", 1), P = GetInt(info, 1, "P", 1);
    return Napi::Number::New(info.Env(), static_cast<double>(comm::kv_heads_per_rank(Hkv, P)));
  });
}

Napi::Value MemcpyGbps(const Napi::CallbackInfo& info) {
  return Guard(info, [&]() -> Napi::Value {
    int64_t bytes = GetInt(info, 0, "bytes", 1);
    double secs = GetNumber(info, 1, "minSeconds");
    auto out = std::make_shared<double>(0);
    return RunAsync(
        info.Env(), "memcpyGbps", [=] { *out = comm::memcpy_gbps(size_t(bytes), secs); },
        [out](Napi::Env env) { return Napi::Number::New(env, *out); }, {});
  });
}

}  // namespace

// For other binding families (the model's Ulysses attention): the communicator behind a handle.
std::shared_ptr<comm::Communicator> CommunicatorFromHandle(const Napi::CallbackInfo& info, size_t i) {
  return GetComm(info, i);
}

void InitComm(Napi::Env env, Napi::Object exports) {
  exports.Set("commConnect", Napi::Function::New(env, Connect, "commConnect"));
  exports.Set("commSplit", Napi::Function::New(env, Split, "commSplit"));
  exports.Set("commClose", Napi::Function::New(env, Close, "commClose"));
  exports.Set("commInfo", Napi::Function::New(env, Info, "commInfo"));
  exports.Set("commAllReduceSum", Napi::Function::New(env, AllReduceSum, "commAllReduceSum"));
  exports.Set("commBroadcast", Napi::Function::New(env, Broadcast, "commBroadcast"));
  exports.Set("commBarrier", Napi::Function::New(env, Barrier, "commBarrier"));
  exports.Set("commAllGather", Napi::Function::New(env, AllGather, "commAllGather"));
  exports.Set("commAllToAll", Napi::Function::New(env, AllToAll, "commAllToAll"));
  exports.Set("commReduceScatterSum", Napi::Function::New(env, ReduceScatterSum, "commReduceScatterSum"));
  exports.Set("commUlysses", Napi::Function::New(env, Ulysses, "commUlysses"));
  exports.Set("ulyssesKvHeadsPerRank", Napi::Function::New(env, KvHeadsPerRank, "ulyssesKvHeadsPerRank"));
  exports.Set("memcpyGbps", Napi::Function::New(env, MemcpyGbps, "memcpyGbps"));
}

}  // namespace ua
