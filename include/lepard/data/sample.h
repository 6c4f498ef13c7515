#pragma once
// One training or evaluation sample, and what every reader shares: the LASSIE crop,
// the 14 keypoint slots, the 16 part labels, error handling and the train/test split.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace lepard::data {

// A square box in the original image's pixel grid; it may reach outside the image.
struct CropBox {
  int64_t left = 0, top = 0, size = 0;
};

// LASSIE's crop (utils/data_utils.py process_bbox): a square of side
// int(1.5 max(width, height)) centred on the object's box, corners truncated to integers.
CropBox square_crop_box(double left, double top, double width, double height, double scale = 1.5);

// Crops `image` (H, W, C) uint8 to `box` and resizes it to out_size x out_size; pixels
// outside the image are zero. Bilinear for images, nearest for label maps and masks.
enum class Interpolation { Bilinear, Nearest };
at::Tensor crop_image(const at::Tensor& image, const CropBox& box, int64_t out_size,
                      Interpolation interpolation = Interpolation::Bilinear);

// Keypoints (N, 3) as (x, y, visible) in original pixels -> crop pixels of an out_size
// crop: x' = (x - left) * out_size / size; invisible keypoints become (0, 0, 0) as in LASSIE.
at::Tensor crop_keypoints(const at::Tensor& keypoints, const CropBox& box, int64_t out_size);

struct Sample {
  std::string id;                    // unique within a dataset, e.g. "zebra/12"
  std::filesystem::path image_path;  // the original image
  int64_t original_height = 0, original_width = 0;
  CropBox crop;      // in the original image
  at::Tensor image;  // (S, S, 3) uint8 RGB crop
  // Ground truth, undefined where the dataset has none:
  at::Tensor mask;         // (S, S) uint8, 1 = object
  at::Tensor part_labels;  // (S, S) uint8, 0 background, 1..16 LASSIE part labels
  at::Tensor keypoints;    // (14, 3) float32: x, y in crop pixels, visible (0 or 1)
  // The self-supervision (features, pseudo-labels) lives in lepard-prepare's cache, read by
  // id: features::read_label_maps, features::cache_path.
};

// A reader's problem with one input; the message names the file (and row or key).
class DataError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class Split { All, Train, Test };

struct ReaderOptions {
  int64_t crop_size = 256;
  // On a bad file: false stops with a DataError; true logs a warning, skips it and
  // records it in ReadResult::skipped.
  bool skip_bad = false;
  Split split = Split::All;
  // Share of samples in the test split. Membership is a hash of the sample id, so it is
  // stable when files are added or removed and needs no seed.
  double test_fraction = 0.2;
};

struct ReadResult {
  std::vector<Sample> samples;
  std::vector<std::string> skipped;  // one message per skipped input
  int64_t mask_box_crops = 0;        // samples cropped by their ground-truth mask's box (too few keypoints)
};

// Whether a sample id falls in the test split (a 64-bit hash of the id: FNV-1a, then
// MurmurHash3's finaliser).
bool in_test_split(const std::string& id, double test_fraction);

}  // namespace lepard::data
