// The C++ DINO ViT against a ViT written in Python from the architecture description
// (fixtures/dino_reference.py) whose random weights were saved by the real torch.save:
// the last block's key facet, CLS attention and saliency agree for ViT-S/8 and ViT-B/16,
// at 224x224 and at non-square sizes that need position interpolation, at the patch
// stride, 8 and 4; safetensors (DINO and Hugging Face layouts) load to the same numbers;
// bad checkpoints get errors that name the key.
#include <lepard/features/vit.h>
#include <lepard/io/atomic_file.h>
#include <lepard/io/npy.h>

#include "test_support.h"

#include <gtest/gtest.h>

#include <ATen/TensorOperators.h>
#include <ATen/ops/addmm.h>
#include <ATen/ops/full.h>
#include <ATen/ops/layer_norm.h>
#include <ATen/ops/rand.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <sstream>

namespace lepard::features {
namespace {

namespace fs = std::filesystem;

class Vit : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // Written once per build tree (the ctest fixture features.vit_fixtures, or here when
    // the binary is run by hand); the script does nothing when the files are current.
    dir_ = LEPARD_VIT_FIXTURES;
    const std::string cmd = std::string(LEPARD_PYTHON) + " " + LEPARD_FIXTURES_DIR + "/make_vit.py " + dir_.string();
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  static void TearDownTestSuite() { models_.clear(); }
  static const DinoVit& model(const std::string& name, c10::Device device = c10::kCPU) {
    auto& m = models_[name + "@" + device.str()];
    if (!m) {
      m = std::make_unique<DinoVit>(DinoVit::load(dir_ / (name + ".pth")));
      m->to(device);
    }
    return *m;
  }
  static std::string error_of(const StateDict& sd) {
    try {
      DinoVit vit(sd, "ckpt.pth");
    } catch (const CheckpointError& e) {
      return e.what();
    }
    return "no error";
  }
  static fs::path dir_;
  static std::map<std::string, std::unique_ptr<DinoVit>> models_;
};
fs::path Vit::dir_;
std::map<std::string, std::unique_ptr<DinoVit>> Vit::models_;

TEST_F(Vit, InfersTheArchitectureFromTheShapes) {
  EXPECT_EQ(model("vit_small8").arch().name(), "ViT-S/8");
  EXPECT_EQ(model("vit_small8").arch().depth, 12);
  EXPECT_EQ(model("vit_small8").arch().pos_grid, 28);
  EXPECT_EQ(model("vit_base16").arch().name(), "ViT-B/16");
  EXPECT_EQ(model("vit_base16").arch().heads, 12);
  EXPECT_EQ(model("vit_base16").state_dict().size(), 150u);
}

// The Python reference's numbers on every device.
class VitDevices : public Vit, public ::testing::WithParamInterface<c10::Device> {};

TEST_P(VitDevices, MatchesThePythonReference) {
  const auto device = GetParam();
  std::ifstream cases(dir_ / "cases.txt");
  std::string line;
  int n = 0;
  while (std::getline(cases, line)) {
    std::istringstream in(line);
    std::string name, model_name;
    int64_t h = 0, w = 0, stride = 0;
    in >> name >> model_name >> h >> w >> stride;
    SCOPED_TRACE(name);
    const auto& vit = model(model_name, device);
    ASSERT_EQ(vit.device(), device);
    const auto image = io::read_npy(dir_ / (name + "_input.npy"));
    ASSERT_EQ(image.size(2), h);
    ExtractOptions options;
    options.stride = stride;
    const auto f = vit.extract(image, options);
    const auto key = io::read_npy(dir_ / (name + "_key.npy"));
    const auto cls = io::read_npy(dir_ / (name + "_cls.npy"));
    const auto sal = io::read_npy(dir_ / (name + "_saliency.npy"));
    ASSERT_EQ(f.facet.sizes(), key.sizes());
    ASSERT_EQ(f.cls_attention.sizes(), cls.sizes());
    EXPECT_EQ(key.size(1), 1 + (h - vit.arch().patch) / stride);
    EXPECT_LT(testing::max_abs_diff(f.facet, key), 1e-4);
    EXPECT_LT(testing::max_abs_diff(f.cls_attention, cls), 1e-4);
    // Relative to the largest attention too (values are small), and the min-max
    // normalised saliency, which magnifies any difference.
    EXPECT_LT(testing::max_abs_diff(f.cls_attention, cls) / cls.abs().max().item<double>(), 1e-4);
    EXPECT_LT(testing::max_abs_diff(cls_saliency(f.cls_attention), sal), 1e-4);
    std::printf("%-24s key %.2e  cls attention %.2e  saliency %.2e\n", name.c_str(),
                testing::max_abs_diff(f.facet, key), testing::max_abs_diff(f.cls_attention, cls),
                testing::max_abs_diff(cls_saliency(f.cls_attention), sal));
    ++n;
  }
  EXPECT_EQ(n, 9);
}

INSTANTIATE_TEST_SUITE_P(Devices, VitDevices, ::testing::ValuesIn(testing::test_devices()), testing::device_name);

TEST_F(Vit, FacetsAndLayers) {
  const auto& vit = model("vit_small8");
  const auto image = io::read_npy(dir_ / "vit_small8_144x200_s8_input.npy");
  ExtractOptions o;
  o.attention = false;
  o.facet = Facet::Query;
  const auto q = vit.extract(image, o).facet;
  o.facet = Facet::Value;
  const auto v = vit.extract(image, o).facet;
  o.facet = Facet::Key;
  const auto k = vit.extract(image, o).facet;
  EXPECT_EQ(q.sizes(), (std::vector<int64_t>{1, 18, 25, 384}));
  EXPECT_GT(testing::max_abs_diff(q, k), 0.1);
  EXPECT_GT(testing::max_abs_diff(v, k), 0.1);
  // The token of block 10 is the input of block 11: its keys are a LayerNorm and a
  // linear map of it (with CLS, which the facet drops, taking no part per token).
  o.facet = Facet::Token;
  o.layer = 10;
  const auto token = vit.extract(image, o).facet;
  const auto sd = vit.state_dict();
  std::map<std::string, at::Tensor> w(sd.begin(), sd.end());
  const auto ln = at::layer_norm(token, {384}, w["blocks.11.norm1.weight"], w["blocks.11.norm1.bias"], 1e-6);
  const auto keys = at::addmm(w["blocks.11.attn.qkv.bias"].narrow(0, 384, 384), ln.view({-1, 384}),
                              w["blocks.11.attn.qkv.weight"].narrow(0, 384, 384).t());
  EXPECT_LT(testing::max_abs_diff(keys.view_as(k), k), 1e-4);
  o.layer = 12;
  EXPECT_THROW(vit.extract(image, o), std::invalid_argument);
  o.layer = -1;
  o.stride = 3;
  EXPECT_THROW(vit.extract(image, o), std::invalid_argument);
  EXPECT_THROW(parse_facet("keys"), std::invalid_argument);
}

TEST_F(Vit, SafetensorsLoadToTheSameNumbers) {
  for (const auto& [file, model_name] :
       std::vector<std::pair<std::string, std::string>>{{"vit_small8.safetensors", "vit_small8"},
                                                        {"vit_small8_hf.safetensors", "vit_small8"},
                                                        {"vit_base16.safetensors", "vit_base16"}}) {
    SCOPED_TRACE(file);
    const auto st = DinoVit::load(dir_ / file);
    const auto a = st.state_dict(), b = model(model_name).state_dict();
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i].first, b[i].first);
      EXPECT_TRUE(a[i].second.equal(b[i].second)) << a[i].first;
    }
  }
  EXPECT_EQ(DinoVit::load(dir_ / "vit_small8_hf.safetensors").layout(), "Hugging Face");
}

TEST_F(Vit, FullCheckpointNestingUsesTheTeacher) {
  const auto sd = model("vit_base16").state_dict();
  StateDict full;
  for (const auto& [k, v] : sd) full.emplace_back("student.module.backbone." + k, at::zeros_like(v));
  for (const auto& [k, v] : sd) full.emplace_back("teacher.backbone." + k, v);
  const DinoVit vit(full, "full.pth");
  EXPECT_EQ(vit.layout(), "DINO, prefix 'teacher.backbone.'");
  EXPECT_TRUE(vit.state_dict()[5].second.equal(sd[5].second));
}

TEST_F(Vit, BadCheckpointsNameTheKey) {
  const auto sd = model("vit_small8").state_dict();
  auto missing = sd;
  missing.erase(missing.begin() + 20);
  EXPECT_NE(error_of(missing).find("ckpt.pth: missing key '" + sd[20].first + "'"), std::string::npos)
      << error_of(missing);
  auto misshapen = sd;
  misshapen[6].second = misshapen[6].second.narrow(1, 0, 100);  // blocks.0.attn.qkv.weight
  EXPECT_NE(error_of(misshapen).find(
                "key 'blocks.0.attn.qkv.weight' has shape [1152, 100], expected [1152, 384] for ViT-S/8"),
            std::string::npos)
      << error_of(misshapen);
  auto bad_pos = sd;
  bad_pos[1].second = bad_pos[1].second.narrow(1, 0, 700);
  EXPECT_NE(error_of(bad_pos).find("key 'pos_embed' has shape [1, 700, 384]"), std::string::npos) << error_of(bad_pos);
  const StateDict not_a_vit = {{"fc.weight", at::zeros({2, 2})}};
  EXPECT_NE(error_of(not_a_vit).find("no ViT in this file"), std::string::npos);
  StateDict two = sd;
  for (const auto& [k, v] : sd) two.emplace_back("other." + k, v);
  EXPECT_NE(error_of(two).find("several ViTs"), std::string::npos);
  // A truncated download names the file.
  std::ifstream in(dir_ / "vit_small8.pth", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  bytes.resize(bytes.size() / 2);
  const auto cut = testing::temp_dir("vit") / "cut.pth";
  io::write_file_atomic(cut, bytes);
  try {
    DinoVit::load(cut);
    ADD_FAILURE() << "no error";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("cut.pth: truncated"), std::string::npos) << e.what();
  }
}

TEST(VitHelpers, SaliencyAndNormalisation) {
  auto att = at::rand({2, 6, 3, 4}, at::kDouble);
  const auto s = cls_saliency(att);
  EXPECT_NEAR(s.min().item<double>(), 0.0, 1e-12);
  EXPECT_NEAR(s.max().item<double>(), 1.0, 1e-12);
  const auto mean = (att.select(1, 0) + att.select(1, 2) + att.select(1, 4) + att.select(1, 5)) / 4;
  const auto m0 = mean[0];
  EXPECT_LT(testing::max_abs_diff(s[0], (m0 - m0.min()) / (m0.max() - m0.min())), 1e-12);
  EXPECT_THROW(cls_saliency(att, {6}), std::invalid_argument);
  const auto grey = at::full({1, 3, 2, 2}, 0.5, at::kDouble);
  const auto n = imagenet_normalize(grey);
  EXPECT_NEAR(n[0][0][0][0].item<double>(), (0.5 - 0.485) / 0.229, 1e-12);
  EXPECT_NEAR(n[0][2][1][1].item<double>(), (0.5 - 0.406) / 0.225, 1e-12);
}

TEST(VitHelpers, SaliencyBoxSurroundsTheLargestSalientRegion) {
  // A 10 x 12 token grid: a 3 x 4 salient block (rows 2-4, columns 5-8), one brighter but
  // lonely token (8, 0), and a token just under the threshold beside the block.
  auto sal = at::zeros({10, 12}, at::kFloat);
  sal.narrow(0, 2, 3).narrow(1, 5, 4).fill_(0.9);
  sal[8][0] = 1.0;
  sal[3][9] = 0.49;
  // Patch 8, stride 8, the image (160 x 192) resized to 80 x 96: two image pixels per input pixel.
  auto box = saliency_box(sal, 0.5, 8, 8, 80, 96, 160, 192);
  ASSERT_TRUE(box.has_value());
  EXPECT_EQ(box->patches, 12);
  EXPECT_DOUBLE_EQ(box->left, 5 * 8 * 2);
  EXPECT_DOUBLE_EQ(box->top, 2 * 8 * 2);
  EXPECT_DOUBLE_EQ(box->width, (8 * 8 + 8) * 2 - 80);   // columns 5..8 cover input x 40..71
  EXPECT_DOUBLE_EQ(box->height, (4 * 8 + 8) * 2 - 32);  // rows 2..4 cover input y 16..39
  // Stride 4 (overlapping tokens of side 8): token j covers input [4 j, 4 j + 8).
  box = saliency_box(sal, 0.5, 8, 4, 80, 96, 160, 192);
  ASSERT_TRUE(box.has_value());
  EXPECT_DOUBLE_EQ(box->left, 5 * 4 * 2);
  EXPECT_DOUBLE_EQ(box->width, (8 * 4 + 8) * 2 - 40);
  // A lower threshold joins the 0.49 token to the block.
  box = saliency_box(sal, 0.4, 8, 8, 80, 96, 160, 192);
  ASSERT_TRUE(box.has_value());
  EXPECT_EQ(box->patches, 13);
  EXPECT_DOUBLE_EQ(box->width, (9 * 8 + 8) * 2 - 80);
  // Equal sizes: the group with the larger saliency sum wins.
  auto two = at::zeros({4, 8}, at::kFloat);
  two[0][0] = 0.6;
  two[3][7] = 0.8;
  box = saliency_box(two, 0.5, 1, 1, 4, 8, 4, 8);
  ASSERT_TRUE(box.has_value());
  EXPECT_DOUBLE_EQ(box->left, 7);
  EXPECT_DOUBLE_EQ(box->top, 3);
  EXPECT_FALSE(saliency_box(sal, 1.01, 8, 8, 80, 96, 160, 192).has_value());
  EXPECT_THROW(saliency_box(at::zeros({3}), 0.5, 8, 8, 8, 8, 8, 8), std::invalid_argument);
}

}  // namespace
}  // namespace lepard::features
