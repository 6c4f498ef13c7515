#pragma once
// File formats of trained weights (io, below every layer that loads weights: features' DINO
// ViT, model's torchvision encoder, train's checkpoint check).
// Reading the released DINO checkpoints without Python: torch.save zip files, including
// those whose top level is an OrderedDict (what torch.save(model.state_dict()) writes and
// LibTorch 1.13's torch::pickle_load rejects) and whose values are nn.Parameter, and full
// training checkpoints that nest dicts (student / teacher, module., backbone.).

#include <ATen/core/Tensor.h>

#include <filesystem>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace lepard::io {

// A flat, ordered list of (key, tensor); nested dicts are flattened with '.' joining
// their keys ("teacher" / "backbone.pos_embed" -> "teacher.backbone.pos_embed"). Entries
// that are not tensors (epochs, optimiser settings, argparse namespaces) are dropped.
using StateDict = std::vector<std::pair<std::string, at::Tensor>>;

class CheckpointError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Reads a torch.save file (the zip format of PyTorch >= 1.6). Throws CheckpointError
// naming the file and what is wrong: a legacy (non-zip) file with the command that
// converts it, a truncated or compressed archive, a pickle opcode or a storage type it
// does not support (with its offset), a storage entry that is missing or short.
StateDict load_torch_checkpoint(const std::filesystem::path& path);

// Reads a safetensors file: u64 little-endian header length N, N bytes of JSON
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}, then the data.
// dtypes F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL. Errors name the key and the offsets
// (a truncated file, offsets outside the data, an unknown dtype, malformed JSON).
StateDict load_safetensors(const std::filesystem::path& path);

// Checks a zip archive of stored entries (torch.save files, LibTorch's torch::serialize
// archives, lepard checkpoints): every entry's CRC-32 against the central directory's, so
// that a file damaged after it was written (a flipped block, a partial copy) is refused
// rather than loaded with shifted weights. Deflated entries (LibTorch compresses the code it
// stores beside the weights) are not inflated and so not checked; tensors are stored. Throws CheckpointError naming the
// file and entry.
void verify_zip(const std::filesystem::path& path);

// Either format, chosen by the file's first bytes (a legacy torch file gets its
// conversion hint).
StateDict load_state_dict(const std::filesystem::path& path);

}  // namespace lepard::io
