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
// there are none). Sample ids are "<category>/<id>". Where root/gt/<category>/ holds
// mask_<id>.png (0 / 255) and parts_<id>.png (LASSIE labels 0..16), as the synthetic
// menagerie writes, they become the sample's mask and part labels.
ReadResult read_lassie_web_images(const std::filesystem::path& root, const std::string& category,
                                  const ReaderOptions& options = {});

// Every image of a folder (.png, .jpg, .jpeg, .bmp; sorted by name), for inference: the
// crop is the centred square of side max(width, height) (zero padding, no ground truth).
// Sample ids are the file names.
ReadResult read_image_folder(const std::filesystem::path& folder, const ReaderOptions& options = {});

}  // namespace lepard::data

namespace lepard::data {

// Pascal-Part (horse, cow, sheep): root/image_sets/<category>.txt lists image ids (with or
// without ".jpg"), root/JPEGImages/<id>.jpg the images, root/Annotations_Part/<id>.mat the
// MATLAB structs anno.objects(i) with class, mask and parts(j).part_name / parts(j).mask
// (read with libmatio). The object used is the first of the requested class (LASSIE takes
// the first object whatever its class, which fails on images whose first object is a
// rider). Its parts are grouped into the 16 LASSIE labels (later parts overwrite earlier
// ones; names outside the grouping, such as a person's "hair", are ignored) and the
// keypoints derived as LASSIE does: eyes and ears at the part's centroid, the muzzle
// halfway between its centroid and its lowest pixel, the tail at its highest pixel, each
// leg keypoint at the lowest pixel of that leg part (the leftmost such pixel), and the
// tail keypoint marked invisible ("tail top is often occluded"). The crop box surrounds
// the labelled part pixels. Sample ids are the image ids.
ReadResult read_pascal_part(const std::filesystem::path& root, const std::string& category,
                            const ReaderOptions& options = {});

// The LASSIE part label (1..16) of a Pascal-Part part name, or 0 when the grouping has
// none (docs/references.md section 1: hooves and paws go to the lower leg, whole legs to the upper).
int64_t part_label_from_pascal_name(const std::string& name);

}  // namespace lepard::data
