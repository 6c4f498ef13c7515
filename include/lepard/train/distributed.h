#pragma once
// Data-parallel training over several processes with c10d: Gloo on the CPU (NCCL where a
// CUDA LibTorch provides it is not wired yet: docs/training.md). Rank, world size and the
// rendezvous come from flags or the usual environment variables (RANK, WORLD_SIZE,
// MASTER_ADDR, MASTER_PORT), as torchrun sets them. Rank 0 hosts the TCP store.
//
// Each process computes the loss on its share of the batch; all_reduce_mean() averages the
// gradients, so that every process takes the same optimiser step as one process with the
// whole batch (the losses are means of per-image terms, tests/train/test_trainer.cpp, Distributed.*).
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace lepard::train {

struct DistributedOptions {
  int64_t rank = 0;
  int64_t world_size = 1;
  std::string master_addr = "127.0.0.1";
  int64_t master_port = 29500;
  int64_t timeout_s = 300;
};

// Fills unset fields (rank < 0, world_size < 1, empty address, port < 1) from RANK,
// WORLD_SIZE, MASTER_ADDR and MASTER_PORT; throws std::invalid_argument naming the flag or
// variable for malformed values or rank >= world size.
DistributedOptions distributed_from_environment(DistributedOptions given);

class Distributed {
 public:
  // world_size 1: no communication. Otherwise joins the group (blocks until every rank is
  // there or the timeout passes) and sets SIGPIPE to be ignored for the whole process, so
  // that a peer that exits makes the next collective throw instead of killing this rank.
  explicit Distributed(const DistributedOptions& options);
  ~Distributed();
  Distributed(const Distributed&) = delete;
  Distributed& operator=(const Distributed&) = delete;

  int64_t rank() const { return options_.rank; }
  int64_t world_size() const { return options_.world_size; }
  // Replaces every tensor by its mean over the processes (one flattened all-reduce).
  void all_reduce_mean(const std::vector<at::Tensor>& tensors);
  // Waits for every process.
  void barrier();
  // Whether this build has Gloo (a LibTorch built without c10d cannot run world_size > 1).
  static bool available();

 private:
  struct Impl;
  DistributedOptions options_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lepard::train
