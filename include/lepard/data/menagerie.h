#pragma once
// The synthetic menagerie: procedural articulated animals with full ground truth, so that
// training and every metric can run where the real datasets and DINO weights cannot be
// downloaded (docs/design.md "Data").
//
// Each body part is a swept tube (a path with a radius profile and low-frequency radial
// noise), not a superquadric, labelled with its LASSIE part label. Quadruped and biped
// skeletons are articulated at random within joint limits; a camera looks at the animal
// from a random azimuth and elevation. Rendering uses the project's hard rasteriser:
// Lambert shading, per-species textures (stripes, patches, wool), cluttered backgrounds.
//
// The DINO surrogate is a SIMULATION of DINO ViT features, stored exactly as real ones
// are (.npy, float32, [H/s, W/s, D], s = 4 by default): every LASSIE part label and every
// background clutter kind has a fixed prototype vector (the same for all instances and
// species, plus a small per-species shift; parts share an "animal" direction, backgrounds
// a "scene" direction pointing away from it, as DINO's features split object from
// background), a patch's feature is the mix of its pixels' prototypes (so
// features mix at part boundaries as patch features do) plus Gaussian noise of a given
// level, L2-normalised. Its saliency simulates DINO's last-layer CLS attention: each
// patch's share of animal pixels weighted by part (head highest, legs and tail lower),
// some attention on a few background clutter kinds, Gaussian noise, min-max normalised.
// It is not DINO: it stands in for it until real weights are given.

#include <lepard/data/sample.h>

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace lepard::data {

// horse, cow, sheep, zebra, tiger, giraffe, elephant, kangaroo, penguin.
const std::vector<std::string>& menagerie_categories();

struct SurrogateOptions {
  int64_t dim = 64;    // feature dimension D
  double noise = 2.6;  // per-patch noise, relative to a prototype's norm; calibrated (docs/features.md)
  int64_t stride = 4;  // patch stride in pixels: 4 on a 256 image is the 64x64 grid of LASSIE (512 at stride 8)
  double saliency_noise = 0.03;  // standard deviation of the saliency noise (before normalising)
};

struct SyntheticImage {
  at::Tensor image;         // (S, S, 3) uint8
  at::Tensor mask;          // (S, S) uint8, 1 = animal
  at::Tensor parts;         // (S, S) uint8, LASSIE labels 0..16
  at::Tensor depth;         // (S, S) float32, 0 = background
  at::Tensor keypoints;     // (14, 3) float32: x, y in pixels, visible
  at::Tensor features;      // (S/s, S/s, D) float32, the DINO surrogate (s = its stride)
  at::Tensor saliency;      // (S/s, S/s) float32 in [0, 1], the surrogate's CLS-attention saliency
  std::string params_json;  // the generating parameters
  // The ground-truth mesh as the renderer drew it: one tube per body part, all with the
  // SurfaceGrid(10, 12) topology, projected like core::project_parts output (x, y in
  // normalised image coordinates, camera depth). For a category the tubes come in the same
  // order in every image, so vertex (k, v) corresponds across images.
  at::Tensor mesh;                   // (K, 122, 3) float32
  at::Tensor mesh_faces;             // (240, 3) int64
  std::vector<int64_t> mesh_labels;  // LASSIE part label of each tube
};

// One image of `category`; the same (category, size, seed, surrogate) gives the same image.
SyntheticImage render_synthetic(const std::string& category, int64_t size, uint64_t seed,
                                const SurrogateOptions& surrogate = {});

// The surrogate's feature of zero padding (outside an image), a unit (dim) vector: what
// features::load_surrogate gives crop cells beyond the image, as a ViT sees black there.
at::Tensor surrogate_padding_feature(int64_t dim);

struct MenagerieOptions {
  std::string category = "horse";
  int64_t count = 100;
  int64_t size = 256;
  uint64_t seed = 1;
  SurrogateOptions surrogate;
  // Called after each image with (images written, count), from the worker threads.
  std::function<void(int64_t, int64_t)> progress;
};

// Writes `count` images in the LASSIE web-image layout, so that read_lassie_web_images
// loads them: root/images/<c>/input_<id>.png and root/annotations/<c>.csv (percent
// keypoints, visible ones only), plus root/gt/<c>/{mask,parts}_<id>.png,
// root/gt/<c>/depth_<id>.npy, root/gt/<c>/params_<id>.json and
// root/gt/<c>/mesh_<id>.npy (the ground-truth mesh, SyntheticImage::mesh; its grid and
// labels are the "mesh" entry of params_<id>.json) and
// root/features/<c>/input_<id>.npy and root/saliency/<c>/input_<id>.npy (the surrogate,
// for the whole image; features::load_surrogate crops it like the image). Images run in parallel; image i uses
// seed (seed, i), so the files do not depend on the number of threads.
void write_menagerie(const std::filesystem::path& root, const MenagerieOptions& options);

// The ground-truth mesh of a sample read from a menagerie root (read_lassie_web_images):
// pieces (T, V, 3) projected like a reconstruction but in the sample's crop (x, y in the
// crop's normalised coordinates, camera depth), the grid's faces and each piece's LASSIE
// label. std::nullopt where the root has no mesh file for it (real datasets, or a menagerie
// written before meshes were stored); a DataError naming the file when it is unreadable.
struct GroundTruthMesh {
  at::Tensor verts;
  at::Tensor faces;
  std::vector<int64_t> labels;
};
std::optional<GroundTruthMesh> read_ground_truth_mesh(const std::filesystem::path& root, const Sample& sample);

}  // namespace lepard::data
