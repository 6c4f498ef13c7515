#include <lepard/train/distributed.h>

#include <ATen/ATen.h>

#include <chrono>
#include <csignal>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <cstdlib>
#include <stdexcept>

#ifdef LEPARD_HAVE_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif

namespace lepard::train {

namespace {

int64_t env_int(const char* name, int64_t fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  const long long x = std::strtoll(v, &end, 10);
  if (*end != '\0')
    throw std::invalid_argument(std::string("environment variable ") + name + "='" + v + "' is not an integer");
  return x;
}

}  // namespace

DistributedOptions distributed_from_environment(DistributedOptions o) {
  if (o.rank < 0) o.rank = env_int("RANK", 0);
  if (o.world_size < 1) o.world_size = env_int("WORLD_SIZE", 1);
  if (o.master_addr.empty()) {
    const char* a = std::getenv("MASTER_ADDR");
    o.master_addr = (a && *a) ? a : "127.0.0.1";
  }
  if (o.master_port < 1) o.master_port = env_int("MASTER_PORT", 29500);
  if (o.world_size < 1) throw std::invalid_argument("--world-size (WORLD_SIZE) must be at least 1");
  if (o.rank < 0 || o.rank >= o.world_size)
    throw std::invalid_argument("--rank (RANK) " + std::to_string(o.rank) + " is outside [0, world size " +
                                std::to_string(o.world_size) + ")");
  if (o.timeout_s < 1 || o.timeout_s > 86400)
    throw std::invalid_argument("--timeout must be in [1, 86400] seconds, got " + std::to_string(o.timeout_s));
  if (o.master_port > 65535) throw std::invalid_argument("--master-port (MASTER_PORT) must be below 65536");
  return o;
}

struct Distributed::Impl {
#ifdef LEPARD_HAVE_GLOO
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group;
#endif
};

bool Distributed::available() {
#ifdef LEPARD_HAVE_GLOO
  return true;
#else
  return false;
#endif
}

Distributed::Distributed(const DistributedOptions& options) : options_(options), impl_(std::make_unique<Impl>()) {
  if (options_.world_size <= 1) return;
#ifdef LEPARD_HAVE_GLOO
  // A write to the socket of a peer that has exited raises SIGPIPE, whose default action
  // kills this process before Gloo can report anything (seen in the lost-peer test under
  // load: the write won the race against the read that sees the closed connection).
  // Ignored, the write fails with EPIPE, Gloo throws, and collective() below names the lost
  // peer. CPython ignores SIGPIPE at start-up, so PyTorch's Gloo sees the same.
  std::signal(SIGPIPE, SIG_IGN);
  // The rendezvous runs on its own thread and is given timeout_s: LibTorch's TCPStore server
  // waits for its workers without honouring its own timeout (a missing peer hung rank 0 past
  // 420 s with a 300 s timeout). When the time passes, the thread is left blocked (it cannot
  // be cancelled) and the error names who was waited for; the process is about to exit.
  struct Rendezvous {
    std::mutex mutex;
    std::condition_variable done;
    bool finished = false;
    std::string error;
    c10::intrusive_ptr<c10d::ProcessGroupGloo> group;
  };
  auto r = std::make_shared<Rendezvous>();
  const auto o = options_;
  std::thread([r, o] {
    std::string error;
    c10::intrusive_ptr<c10d::ProcessGroupGloo> group;
    try {
      c10d::TCPStoreOptions so;
      so.port = static_cast<std::uint16_t>(o.master_port);
      so.isServer = o.rank == 0;
      so.numWorkers = static_cast<std::size_t>(o.world_size);
      so.waitWorkers = true;
      so.timeout = std::chrono::seconds(o.timeout_s);
      auto store = c10::make_intrusive<c10d::TCPStore>(o.master_addr, so);
      auto go = c10d::ProcessGroupGloo::Options::create(std::chrono::seconds(o.timeout_s));
      go->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(o.master_addr));
      go->threads = 2;
      group = c10::make_intrusive<c10d::ProcessGroupGloo>(store, static_cast<int>(o.rank),
                                                          static_cast<int>(o.world_size), go);
    } catch (const std::exception& e) {
      error = e.what();
    }
    std::lock_guard<std::mutex> lock(r->mutex);
    r->group = std::move(group);
    r->error = std::move(error);
    r->finished = true;
    r->done.notify_all();
  }).detach();
  std::unique_lock<std::mutex> lock(r->mutex);
  const std::string where = options_.master_addr + ":" + std::to_string(options_.master_port);
  const std::string peers =
      options_.rank == 0 ? "ranks 1.." + std::to_string(options_.world_size - 1) + " (none or not all of them came)"
                         : "rank 0 (the rendezvous server)";
  if (!r->done.wait_for(lock, std::chrono::seconds(options_.timeout_s), [&] { return r->finished; }))
    throw std::runtime_error("rank " + std::to_string(options_.rank) + " of " + std::to_string(options_.world_size) +
                             ": no rendezvous at " + where + " within " + std::to_string(options_.timeout_s) +
                             " s: waited for " + peers +
                             " (start every rank with the same --world-size, "
                             "--master-addr and --master-port; --timeout to wait longer)");
  if (!r->error.empty())
    throw std::runtime_error("rank " + std::to_string(options_.rank) + ": rendezvous at " + where +
                             " failed: " + r->error.substr(0, r->error.find('\n')));
  impl_->group = r->group;
#else
  throw std::runtime_error("this lepard was built without Gloo (libgloo-dev): world size " +
                           std::to_string(options_.world_size) + " needs it");
#endif
}

Distributed::~Distributed() = default;

#ifdef LEPARD_HAVE_GLOO
namespace {

// Runs one collective; a peer that died (its connection closed) or stalled past the timeout
// becomes an error that says so, instead of Gloo's bare source-file message.
template <typename Op>
void collective(const DistributedOptions& o, const char* what, Op&& op) {
  try {
    op();
  } catch (const std::exception& e) {
    std::string cause = e.what();
    cause = cause.substr(0, cause.find('\n'));
    const bool timed_out = cause.find("Timed out") != std::string::npos;
    throw std::runtime_error(
        "rank " + std::to_string(o.rank) + " of " + std::to_string(o.world_size) + ": the " + what +
        (timed_out ? " waited more than " + std::to_string(o.timeout_s) + " s (--timeout) for a peer that stalled"
                   : " lost a peer (it exited or its connection closed)") +
        "; the last checkpoint is intact, resume with --resume once every rank runs (" + cause + ")");
  }
}

}  // namespace
#endif

void Distributed::all_reduce_mean(const std::vector<at::Tensor>& tensors) {
  if (options_.world_size <= 1 || tensors.empty()) return;
#ifdef LEPARD_HAVE_GLOO
  std::vector<at::Tensor> flat_parts;
  for (const auto& t : tensors) flat_parts.push_back(t.reshape({-1}));
  std::vector<at::Tensor> buffer{at::cat(flat_parts)};
  collective(options_, "gradient all-reduce", [&] { impl_->group->allreduce(buffer)->wait(); });
  buffer[0].div_(static_cast<double>(options_.world_size));
  int64_t offset = 0;
  for (const auto& t : tensors) {
    const int64_t n = t.numel();
    t.copy_(buffer[0].narrow(0, offset, n).view(t.sizes()));
    offset += n;
  }
#endif
}

void Distributed::barrier() {
  if (options_.world_size <= 1) return;
#ifdef LEPARD_HAVE_GLOO
  collective(options_, "barrier", [&] { impl_->group->barrier()->wait(); });
#endif
}

}  // namespace lepard::train
