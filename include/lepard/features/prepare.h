#pragma once
// The pseudo-label cache (`lepard-prepare`): features and saliency of every sample's crop
// (from a DINO ViT checkpoint or the menagerie's surrogate), co-segmentation of the whole
// collection, pseudo-labels as indexed PNGs, a contact sheet. Re-running skips what is
// cached and valid.
//
// Layout of CACHE (ids as the reader gives them, e.g. "horse/12"):
//   features/<id>.npy   (G, G, D) float32, L2-normalised (ViT: G = 1 + (image_size - patch) /
//                       stride; surrogate: surrogate_grid)
//   saliency/<id>.npy   (G, G) float32 in [0, 1]
//   labels/<id>.png     (G, G) indexed PNG: 0 background, 1..C clusters
//   pca/<id>.npy        (G, G, P) float32, when asked
//   features/stamp.json the feature settings the files were made with
//   clusters/NAME/      the cluster model the labels were made with (cosegment.h's
//                       ClusterModel): parts.npy (C, D), background.npy, fg_groups.npy (the
//                       vote), clusters.json (the rule, C and the feature settings). It labels
//                       images outside the collection: PrepareOptions::assign, lepard-infer
//                       --label-clusters.
//   prepare[_NAME].json settings, cluster count, timings, foreground IoU (with ground truth)
//   pseudo_labels[_NAME].png  contact sheet: pseudo-labels over the crops, ground-truth outline
// (NAME: PrepareOptions::name, the category, so that several collections share a cache.)

#include <lepard/data/sample.h>
#include <lepard/features/cosegment.h>
#include <lepard/features/vit.h>
#include <lepard/io/indexed_png.h>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <filesystem>
#include <map>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace lepard::features {

struct PrepareOptions {
  // Exactly one source: a checkpoint, or the surrogate stored beside synthetic images.
  std::filesystem::path weights;
  bool surrogate = false;
  int64_t surrogate_grid = 64;  // the surrogate's feature grid on the crop (LASSIE's 64)
  // ViT settings (weights only): the crop is resized to image_size (0 = the crop side).
  int64_t image_size = 0;
  int64_t stride = 0;  // 0 = the patch size
  Facet facet = Facet::Key;
  int64_t layer = -1;
  std::vector<int64_t> saliency_heads = {0, 2, 4, 5};
  c10::Device device = c10::Device(c10::kCPU);
  CosegOptions coseg;
  // Non-empty: no co-segmentation; the samples are labelled with the stored clusters of
  // another collection (a clusters/NAME folder of its cache, read_clusters), so that their
  // labels mean what that collection's mean. The feature settings must be those the
  // clusters were made with.
  std::filesystem::path assign;
  std::string name;            // collection name for the report files ("" = none)
  int64_t contact_sheet = 24;  // samples on the sheet (0: no sheet)
  bool force = false;          // recompute everything
  // Called as work proceeds: stage ("features", "co-segmentation"), done, total.
  std::function<void(const std::string&, int64_t, int64_t)> progress;
};

struct PrepareReport {
  int64_t images = 0;
  int64_t computed = 0;  // feature maps computed in this run
  int64_t cached = 0;    // feature maps found valid in the cache
  bool coseg_cached = false;
  int64_t clusters = 0;
  double fg_fraction = 0;
  int64_t voted_groups = 0;              // Foreground::vote: groups voted foreground (of fg + bg clusters)
  std::optional<double> foreground_iou;  // when every sample has a ground-truth mask
  double feature_seconds = 0, coseg_seconds = 0;
};

// A cache's folder of stored clusters: cache/clusters/NAME (cache/clusters when NAME is "").
std::filesystem::path clusters_dir(const std::filesystem::path& cache, const std::string& name);

// Stored clusters and what the features they label must be.
struct StoredClusters {
  std::filesystem::path dir;  // the folder read (a cache root resolved to its collection's)
  ClusterModel model;
  // The feature source and settings the clusters were made with: surrogate and
  // surrogate_grid, or (weights) image_size, stride, facet, layer, saliency_heads; weights
  // holds the checkpoint's path as it was then.
  PrepareOptions features;
  int64_t crop_size = 0;         // the crop side of the collection
  std::string weights_arch;      // weights: the ViT's architecture name (vit_small8, ...)
  std::string feature_settings;  // the stored settings as JSON text (what --assign compares)
};

// Reads a clusters folder (or a cache root holding one collection's). Throws
// data::DataError naming the folder or file that is missing or malformed.
StoredClusters read_clusters(const std::filesystem::path& dir);

// One sample's crop through the feature source: (G, G, D) features, L2-normalised, and
// (G, G) saliency. vit: the loaded checkpoint when options name weights (else unused);
// the crop is resized to options.image_size (0: its own side).
struct SampleFeatures {
  at::Tensor features, saliency;
};
SampleFeatures sample_features(const data::Sample& sample, const PrepareOptions& options, const DinoVit* vit);

PrepareReport prepare_pseudo_labels(const std::vector<data::Sample>& samples, const std::filesystem::path& cache,
                                    const PrepareOptions& options);

// The cached pseudo-labels of `samples`, upsampled (nearest) to size x size: (N, size, size)
// int64, 0 background and 1..C clusters (what lepard-eval and lepard-prepare score). Throws
// data::DataError naming the file of a sample the cache lacks.
at::Tensor read_label_maps(const std::vector<data::Sample>& samples, const std::filesystem::path& cache, int64_t size);

// How many part clusters the label maps of `folder` number, where that is recorded: in the
// labels.json that lepard-infer --label-clusters writes beside its maps, or, for a cache's
// labels/<name>/ folder (labels/ for an unnamed collection), in the cache's prepare_<name>.json.
// nullopt where neither is there. What lets a model.label_input network refuse labels made with
// another number of clusters than it was trained on (fewer would otherwise pass unnoticed).
std::optional<int64_t> recorded_label_clusters(const std::filesystem::path& folder);

// Refuses label maps of `folder` whose recorded number of clusters is not `clusters`, the
// number the model `model` was trained on (invalid_argument naming `flag`, the flag or setting
// that gave the folder, and both counts); warns where no number is recorded, since then only
// labels above `clusters` are caught (by model::label_planes).
void check_label_clusters(const std::filesystem::path& folder, int64_t clusters, const std::string& flag,
                          const std::string& model);

// Writes folder/labels.json recording that its label maps number `clusters` clusters, made with
// those of `from` (what recorded_label_clusters reads back), and the crop of the original image
// each map was made for, by map name without ".png" (what recorded_label_crops reads back).
void write_label_clusters(const std::filesystem::path& folder, int64_t clusters, const std::filesystem::path& from,
                          const std::map<std::string, data::CropBox>& crops = {});

// The crops recorded in folder/labels.json (its "crops": name -> left, top, size in the original
// image), so that label maps are not used for another crop of their image than the one they
// were made for; empty where none are recorded (a cache's labels, labels from elsewhere).
// data::DataError naming the file where "crops" is there but malformed.
std::map<std::string, data::CropBox> recorded_label_crops(const std::filesystem::path& folder);

// The content stamp of a sample's input: FNV-1a of its image file's bytes and its crop box
// (of the crop's pixels when it has no file), as 16 hex digits. The cache keeps each id's
// stamp in features/inputs.json: lepard-prepare recomputes a sample whose stamp changed (a
// dataset regenerated in place), and the trainer refuses pseudo-labels made from other
// inputs (a cache pointed at another dataset with the same ids).
std::string input_stamp(const data::Sample& sample);

// The stamps stored in a cache (id -> stamp); empty when the cache has none (written by an
// older lepard-prepare).
std::map<std::string, std::string> read_input_stamps(const std::filesystem::path& cache);

// The cache's file for a sample: cache / kind / (id + ext).
std::filesystem::path cache_path(const std::filesystem::path& cache, const std::string& kind, const std::string& id,
                                 const std::string& ext);

// The colours of pseudo-label PNGs: black background, then the part palette for 1..clusters.
io::Palette pseudo_label_palette(int64_t clusters);

// Pseudo-labels over crops (nearest upsampling), the ground-truth outline where there is
// one: (H, W, 3) uint8.
at::Tensor pseudo_label_sheet(const std::vector<data::Sample>& samples, const std::vector<at::Tensor>& labels,
                              int64_t columns = 8);

}  // namespace lepard::features
