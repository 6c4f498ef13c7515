#pragma once
// Small, portable hashes (std::hash differs between standard libraries; these do not), used
// where a value must be the same on every machine: the held-out split (data/sample.h), the
// menagerie's per-animal seeds, the trainer's counter-based sampler, the pseudo-label cache's
// content stamps.
#include <cstddef>
#include <cstdint>
#include <string>

namespace lepard::core {

// SplitMix64's output function of x + golden gamma: a bijective, well-mixed step.
constexpr uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// MurmurHash3's 64-bit finaliser (mixes every input bit into the high bits).
constexpr uint64_t fmix64(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  return h ^ (h >> 33);
}

constexpr uint64_t kFnvOffset = 1469598103934665603ull;

// FNV-1a, 64 bits, of n bytes, continuing from `h`.
inline uint64_t fnv1a(const void* data, size_t n, uint64_t h = kFnvOffset) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  return h;
}
inline uint64_t fnv1a(const std::string& s, uint64_t h = kFnvOffset) { return fnv1a(s.data(), s.size(), h); }

}  // namespace lepard::core
