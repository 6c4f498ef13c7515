#pragma once

namespace lepard::core {

// Which implementation of an op runs.
enum class Backend {
  Auto,       // the fused CPU kernel on the CPU, tensor ops elsewhere
  Kernel,     // the fused CPU kernel (CPU tensors only)
  TensorOps,  // device-agnostic tensor ops (the path CUDA uses until a CUDA kernel exists)
};

}  // namespace lepard::core
