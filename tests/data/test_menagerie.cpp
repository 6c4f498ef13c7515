// The synthetic menagerie: deterministic for a seed, consistent ground truth, a DINO
// surrogate whose features are consistent per part across instances and species, and a
// dataset the real LASSIE reader loads.
#include <lepard/data/contact_sheet.h>
#include <lepard/data/menagerie.h>
#include <lepard/data/readers.h>
#include <lepard/io/npy.h>
#include <lepard/render/hard_rasterize.h>

#include "test_support.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/cat.h>
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace lepard::data {
namespace {

namespace fs = std::filesystem;

std::string bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST(Menagerie, SameSeedSameImage) {
  const auto a = render_synthetic("horse", 64, 7), b = render_synthetic("horse", 64, 7);
  EXPECT_TRUE(a.image.equal(b.image));
  EXPECT_TRUE(a.parts.equal(b.parts));
  EXPECT_TRUE(a.features.equal(b.features));
  EXPECT_EQ(a.params_json, b.params_json);
  EXPECT_FALSE(render_synthetic("horse", 64, 8).image.equal(a.image));
  EXPECT_THROW(render_synthetic("unicorn", 64, 1), std::invalid_argument);
}

TEST(Menagerie, GroundTruthIsConsistentForEverySpecies) {
  int64_t occluded = 0, visible = 0;
  for (const auto& category : menagerie_categories()) {
    for (uint64_t seed = 0; seed < 6; ++seed) {
      const auto s = render_synthetic(category, 96, seed);
      const double cover = s.mask.to(at::kDouble).mean().item<double>();
      EXPECT_GT(cover, 0.03) << category << " seed " << seed;
      EXPECT_LT(cover, 0.9) << category << " seed " << seed;
      // Part maps lie inside the mask (and cover all of it: every animal pixel has a part).
      EXPECT_TRUE(((s.parts > 0) == (s.mask > 0)).all().item<bool>()) << category;
      EXPECT_TRUE((s.depth > 0).eq(s.mask > 0).all().item<bool>()) << category;
      // Every visible keypoint lies inside the mask.
      const auto k = s.keypoints;
      for (int64_t j = 0; j < 14; ++j) {
        if (k[j][2].item<float>() == 0) {
          ++occluded;
          continue;
        }
        ++visible;
        const int64_t x = std::lround(k[j][0].item<float>()), y = std::lround(k[j][1].item<float>());
        ASSERT_TRUE(x >= 0 && x < 96 && y >= 0 && y < 96) << category << " slot " << j;
        EXPECT_EQ(s.mask[y][x].item<uint8_t>(), 1) << category << " seed " << seed << " slot " << j;
      }
    }
  }
  // Views from all round hide some keypoints (far-side legs, eyes) and show most.
  EXPECT_GT(occluded, 50);
  EXPECT_GT(visible, 300);
}

// The mask, part map and depth all come from the renderer's fragments, so comparing them
// with each other cannot catch a fragment that is wrong. Here they are compared with the
// mesh drawn again in the test, pixel by pixel: a pixel centre ((2 i + 1 - S) / S in x and
// y) is covered when it lies in a projected triangle; the nearest covering triangle (depth
// interpolated as the perspective-correct 1 / sum(w_i / z_i)) gives the part label and depth.
// Pixels whose centre lies within 1e-9 of a triangle edge may go either way; they are few.
TEST(Menagerie, MaskPartsAndDepthMatchTheMeshDrawnAgain) {
  const int64_t S = 64;
  for (const std::string category : {"horse", "giraffe", "penguin"}) {
    for (uint64_t seed : {1, 2}) {
      const auto s = render_synthetic(category, S, seed);
      const auto mesh = s.mesh.to(at::kDouble).contiguous();  // (K, V, 3): x, y, camera depth
      const auto faces = s.mesh_faces.contiguous();
      const int64_t K = mesh.size(0), V = mesh.size(1), F = faces.size(0);
      const double* m = mesh.data_ptr<double>();
      const int64_t* f = faces.data_ptr<int64_t>();
      int64_t mask_wrong = 0, part_wrong = 0, covered = 0, depth_checked = 0;
      double depth_error = 0;
      for (int64_t row = 0; row < S; ++row) {
        for (int64_t col = 0; col < S; ++col) {
          const double px = (2.0 * col + 1 - S) / S, py = (2.0 * row + 1 - S) / S;
          double best = 1e300;
          int64_t label = 0;
          for (int64_t k = 0; k < K; ++k) {
            for (int64_t j = 0; j < F; ++j) {
              const double* a = m + 3 * (k * V + f[3 * j]);
              const double* b = m + 3 * (k * V + f[3 * j + 1]);
              const double* c = m + 3 * (k * V + f[3 * j + 2]);
              const double area = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]);
              if (area == 0 || a[2] <= 0 || b[2] <= 0 || c[2] <= 0) continue;
              const double wa = ((b[0] - px) * (c[1] - py) - (b[1] - py) * (c[0] - px)) / area;
              const double wb = ((c[0] - px) * (a[1] - py) - (c[1] - py) * (a[0] - px)) / area;
              const double wc = 1 - wa - wb;
              if (wa < 0 || wb < 0 || wc < 0) continue;
              const double z = 1 / (wa / a[2] + wb / b[2] + wc / c[2]);
              if (z < best) {
                best = z;
                label = s.mesh_labels[static_cast<size_t>(k)];
              }
            }
          }
          const bool in = best < 1e300;
          covered += in;
          mask_wrong += in != (s.mask[row][col].item<uint8_t>() == 1);
          if (in) {
            part_wrong += label != s.parts[row][col].item<uint8_t>();
            const double d = s.depth[row][col].item<float>();
            if (d > 0) {
              depth_error = std::max(depth_error, std::abs(d - best) / best);
              ++depth_checked;
            }
          }
        }
      }
      SCOPED_TRACE(category + " seed " + std::to_string(seed));
      ASSERT_GT(covered, S * S / 50);
      EXPECT_LE(mask_wrong, S * S / 500) << "of " << covered << " covered pixels";
      EXPECT_LE(part_wrong, covered / 100) << "of " << covered << " covered pixels";
      EXPECT_GT(depth_checked, covered * 9 / 10);
      EXPECT_LT(depth_error, 1e-4);
    }
  }
}

TEST(Menagerie, SurrogateFeaturesAreConsistentPerPart) {
  // Patches wholly inside the torso (label 3) of two different species point the same way;
  // torso and background patches do not.
  auto torso_and_background = [](const SyntheticImage& s, at::Tensor& torso, at::Tensor& bg) {
    const int64_t G = s.features.size(0), p = s.parts.size(0) / G;
    const auto labels = s.parts.view({G, p, G, p}).permute({0, 2, 1, 3}).reshape({G, G, p * p}).to(at::kLong);
    const auto pure_torso = (labels == 3).all(-1), pure_bg = (labels == 0).all(-1);
    torso = s.features.index({pure_torso});
    bg = s.features.index({pure_bg});
  };
  SurrogateOptions quiet;
  quiet.noise = 0.1;
  // Pool patches over a few views of each species (a view from behind shows little torso).
  auto pooled = [&](const std::string& category, at::Tensor& torso, at::Tensor& bg) {
    std::vector<at::Tensor> ts, bs;
    for (uint64_t seed = 0; seed < 6; ++seed) {
      at::Tensor t, b;
      torso_and_background(render_synthetic(category, 128, seed, quiet), t, b);
      ts.push_back(t);
      bs.push_back(b);
    }
    torso = at::cat(ts, 0);
    bg = at::cat(bs, 0);
  };
  at::Tensor t1, b1, t2, b2;
  pooled("horse", t1, b1);
  pooled("cow", t2, b2);
  ASSERT_GT(t1.size(0), 3);
  ASSERT_GT(t2.size(0), 3);
  ASSERT_GT(b2.size(0), 3);
  EXPECT_NEAR(t1.norm(2, {1}).mean().item<float>(), 1.0f, 1e-4);  // L2-normalised
  const double same_part = t1.matmul(t2.t()).mean().item<double>();
  const double part_vs_bg = t1.matmul(b2.t()).mean().item<double>();
  EXPECT_GT(same_part, 0.6);
  EXPECT_LT(part_vs_bg, 0.3);
}

TEST(Menagerie, DatasetIsDeterministicAndLoadsThroughTheLassieReader) {
  const auto a = testing::temp_dir("menagerie_a"), b = testing::temp_dir("menagerie_b");
  MenagerieOptions o;
  o.category = "giraffe";
  o.count = 6;
  o.size = 64;
  o.seed = 11;
  write_menagerie(a, o);
  write_menagerie(b, o);
  for (const char* rel : {"annotations/giraffe.csv", "images/giraffe/input_3.png", "gt/giraffe/parts_5.png",
                          "gt/giraffe/depth_0.npy", "gt/giraffe/params_2.json", "features/giraffe/input_4.npy"}) {
    ASSERT_TRUE(fs::exists(a / rel)) << rel;
    EXPECT_EQ(bytes(a / rel), bytes(b / rel)) << rel;
  }
  const auto features = io::read_npy(a / "features/giraffe/input_0.npy");
  EXPECT_EQ(features.sizes(), (at::IntArrayRef{16, 16, 64}));  // stride 4
  const auto saliency = io::read_npy(a / "saliency/giraffe/input_0.npy");
  EXPECT_EQ(saliency.sizes(), (at::IntArrayRef{16, 16}));
  EXPECT_NEAR(saliency.max().item<double>(), 1.0, 1e-6);
  EXPECT_NEAR(saliency.min().item<double>(), 0.0, 1e-6);
  ReaderOptions ro;
  ro.crop_size = 64;
  const auto r = read_lassie_web_images(a, "giraffe", ro);
  ASSERT_EQ(r.samples.size(), 6u);
  for (const auto& s : r.samples) {
    ASSERT_TRUE(s.mask.defined() && s.part_labels.defined()) << s.id;
    EXPECT_TRUE(((s.part_labels > 0) == (s.mask > 0)).all().item<bool>()) << s.id;
    EXPECT_GT(s.keypoints.select(1, 2).sum().item<float>(), 0.0f) << s.id;
  }
  const auto sheet = contact_sheet(r.samples, 3);
  EXPECT_EQ(sheet.sizes(), (at::IntArrayRef{2 * 68 - 4, 3 * 68 - 4, 3}));
}

// The stored ground-truth mesh, read back into a sample's crop, draws that sample's mask: the
// mesh and its crop transform are those of the image (up to the crop's nearest resampling).
TEST(Menagerie, GroundTruthMeshesLandOnTheirCroppedMasks) {
  const auto root = testing::temp_dir("menagerie_mesh");
  MenagerieOptions o;
  o.category = "horse";
  o.count = 4;
  o.size = 128;
  o.seed = 5;
  write_menagerie(root, o);
  ReaderOptions ro;
  ro.crop_size = 96;
  const auto r = read_lassie_web_images(root, "horse", ro);
  ASSERT_EQ(r.samples.size(), 4u);
  for (const auto& s : r.samples) {
    const auto m = read_ground_truth_mesh(root, s);
    ASSERT_TRUE(m.has_value()) << s.id;
    ASSERT_EQ(m->verts.size(0), static_cast<int64_t>(m->labels.size()));
    const auto drawn = render::rasterize_hard(m->verts.unsqueeze(0), m->faces, 96, 96).part_id[0] >= 0;
    const auto mask = s.mask > 0;
    const double iou = (drawn & mask).sum().item<double>() / (drawn | mask).sum().item<double>();
    EXPECT_GT(iou, 0.9) << s.id;
    // The crop is the keypoints' box grown 1.5 times: the mesh stays inside [-1, 1] mostly.
    EXPECT_LT(m->verts.select(2, 0).abs().max().item<float>(), 1.2f) << s.id;
  }
  // Without the file there is no mesh (a real dataset); a broken one is an error naming it.
  fs::remove(root / "gt/horse/mesh_1.npy");
  EXPECT_FALSE(read_ground_truth_mesh(root, r.samples[1]).has_value());
  std::ofstream(root / "gt/horse/params_2.json") << "{}";
  try {
    read_ground_truth_mesh(root, r.samples[2]);
    FAIL() << "expected a DataError";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("params_2.json"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace lepard::data
