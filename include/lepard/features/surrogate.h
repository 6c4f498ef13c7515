#pragma once
// The DINO surrogate of the synthetic menagerie (data/menagerie.h), read for one sample
// and cropped like its image, so that the rest of the pipeline sees what a real ViT run
// on the crop would give: (G, G, D) features and (G, G) saliency. G defaults to 64, the
// grid of LASSIE's pseudo-labels (a 512 crop at stride 8).

#include <lepard/data/sample.h>

#include <ATen/core/Tensor.h>

#include <filesystem>

namespace lepard::features {

struct SurrogateMaps {
  at::Tensor features;  // (G, G, D) float32, L2-normalised
  at::Tensor saliency;  // (G, G) float32 in [0, 1]
};

// Where the surrogate of an image lives: root/images/<c>/input_<id>.png ->
// root/features/<c>/input_<id>.npy and root/saliency/<c>/input_<id>.npy.
std::filesystem::path surrogate_features_path(const std::filesystem::path& image_path);
std::filesystem::path surrogate_saliency_path(const std::filesystem::path& image_path);

// Reads the whole-image surrogate of `sample` (stored at `stored_stride` pixels per patch)
// and resamples it bilinearly at the centres of a grid x grid tiling of the sample's crop. Outside the original image,
// as a ViT sees zero padding, features take the surrogate's padding feature and saliency 0. Throws data::DataError
// naming the file when it is missing or its grid does not match the image.
SurrogateMaps load_surrogate(const data::Sample& sample, int64_t grid = 64, int64_t stored_stride = 4);

}  // namespace lepard::features
