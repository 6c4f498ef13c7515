#pragma once
// Dataset readers. Each returns cropped Samples (LASSIE's crop) and handles a bad input
// by ReaderOptions::skip_bad: a DataError naming the file (and row), or a warning and a
// ReadResult::skipped entry.

#include <lepard/data/sample.h>

#include <filesystem>
#include <string>

namespace lepard::data {

// LASSIE web images: root/images/<category>/input_<id>.png and root/annotations/<category>.csv,
// a Label-Studio export with columns id, img_url and (optionally) kps: a JSON list of
// {"x": %, "y": %, "keypointlabels": [label]} in percent of the image width and height.
// Visible = annotated. The crop box surrounds the visible keypoints (the whole image when
// there are none). Sample ids are "<category>/<id>".
ReadResult read_lassie_web_images(const std::filesystem::path& root, const std::string& category,
                                  const ReaderOptions& options = {});

// Every image of a folder (.png, .jpg, .jpeg, .bmp; sorted by name), for inference: the
// crop is the centred square of side max(width, height) (zero padding, no ground truth).
// Sample ids are the file names.
ReadResult read_image_folder(const std::filesystem::path& folder, const ReaderOptions& options = {});

}  // namespace lepard::data
