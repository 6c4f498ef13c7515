// LASSIE's crop (box, image, keypoints) and the id-hash split.
#include <lepard/data/keypoints.h>
#include <lepard/data/sample.h>

#include <ATen/TensorOperators.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/full.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>
#include <gtest/gtest.h>

#include <string>

namespace lepard::data {
namespace {

TEST(Crop, BoxFollowsLassie) {
  // process_bbox(20, 20, 160, 60): size int(240.0) = 240, centre (100, 50), corner (-20, -70).
  const auto b = square_crop_box(20, 20, 160, 60);
  EXPECT_EQ(b.size, 240);
  EXPECT_EQ(b.left, -20);
  EXPECT_EQ(b.top, -70);
  // Truncation toward zero, as Python's int(): size int(10.5) = 10, centre (5, -1), corner
  // (int(0.0), int(-6.0)) = (0, -6); and a centre at 3.8 gives int(-1.2) = -1, not floor's -2.
  const auto c = square_crop_box(1.5, -2.5, 7, 3);
  EXPECT_EQ(c.size, 10);
  EXPECT_EQ(c.left, 0);
  EXPECT_EQ(c.top, -6);
  EXPECT_EQ(square_crop_box(0.3, 0, 7, 1).left, -1);
}

TEST(Crop, ImageIsShiftedScaledAndZeroPadded) {
  // Pixel (r, c) holds (c, r, 7).
  const auto cols = at::arange(200, at::kLong).view({1, 200}).expand({100, 200});
  const auto rows = at::arange(100, at::kLong).view({100, 1}).expand({100, 200});
  const auto image = at::stack({cols, rows, at::full({100, 200}, 7L, at::kLong)}, -1).to(at::kByte).contiguous();
  // Same size: an exact shift; outside the image zeros.
  const CropBox box{-20, 10, 50};
  const auto crop = crop_image(image, box, 50, Interpolation::Nearest);
  EXPECT_EQ(crop[0][25][0].item<int>(), 5);   // column -20 + 25 = 5
  EXPECT_EQ(crop[0][25][1].item<int>(), 10);  // row 10
  EXPECT_EQ(crop[0][5][2].item<int>(), 0);    // column -15: outside
  EXPECT_EQ(crop[49][49][1].item<int>(), 59);
  // Half size: output pixel j covers source columns left + 2j, left + 2j + 1.
  const auto half = crop_image(image, CropBox{0, 0, 100}, 50, Interpolation::Bilinear);
  EXPECT_NEAR(half[10][30][0].item<int>(), 60.5, 0.6);
  EXPECT_NEAR(half[10][30][1].item<int>(), 20.5, 0.6);
  // Label maps: nearest keeps the label set.
  const auto labels = (at::arange(200, at::kLong).view({1, 200}).expand({100, 200}) / 50).to(at::kByte).contiguous();
  const auto lc = crop_image(labels, CropBox{-30, -30, 260}, 64, Interpolation::Nearest);
  EXPECT_EQ(lc.max().item<uint8_t>(), 3);
  EXPECT_EQ(lc[0][0].item<uint8_t>(), 0);
}

TEST(Crop, KeypointsFollowTheBox) {
  auto kps = at::zeros({kNumKeypoints, 3}, at::kDouble);
  kps[0][0] = 20;
  kps[0][1] = 20;
  kps[0][2] = 1;
  kps[3][0] = 55;
  kps[3][1] = 66;
  kps[3][2] = 0;  // not annotated: zeroed as LASSIE does
  const auto out = crop_keypoints(kps, CropBox{-20, -70, 240}, 120);
  EXPECT_FLOAT_EQ(out[0][0].item<float>(), 20.0f);
  EXPECT_FLOAT_EQ(out[0][1].item<float>(), 45.0f);
  EXPECT_EQ(out[3].abs().sum().item<float>(), 0.0f);
}

TEST(Split, StableDisjointAndNearTheFraction) {
  int test = 0;
  for (int i = 0; i < 2000; ++i) test += in_test_split("horse/" + std::to_string(i), 0.2);
  EXPECT_NEAR(test / 2000.0, 0.2, 0.03);
  EXPECT_EQ(in_test_split("zebra/12", 0.2), in_test_split("zebra/12", 0.2));
  EXPECT_FALSE(in_test_split("zebra/12", 0.0));
  EXPECT_TRUE(in_test_split("zebra/12", 1.0));
}

TEST(Keypoints, LabelsMapToLassieSlots) {
  EXPECT_EQ(keypoint_slot_from_label("Front right upper leg (knee)"), 6);
  EXPECT_EQ(keypoint_slot_from_label("Back left lower leg (ankle)"), 13);
  EXPECT_EQ(keypoint_slot_from_label("Tail top"), 5);
  EXPECT_EQ(keypoint_slot_from_label("Muzzle (tip of nose)"), 4);
  EXPECT_EQ(keypoint_slot_from_label("Left wing"), -1);
  // Each slot's label names the same side, leg and joint as its short name (rfuleg = front
  // right upper leg, knee), and reads back to the slot.
  for (int64_t i = 0; i < kNumKeypoints; ++i) {
    const std::string label(keypoint_labels()[static_cast<size_t>(i)]);
    const std::string name(keypoint_names()[static_cast<size_t>(i)]);
    EXPECT_EQ(keypoint_slot_from_label(label), i) << label;
    if (name.size() == 6 && name.substr(3) == "leg") {
      EXPECT_EQ(label.find(name[1] == 'f' ? "Front" : "Back"), 0u) << label;
      EXPECT_NE(label.find(name[0] == 'r' ? "right" : "left"), std::string::npos) << label;
      EXPECT_NE(label.find(name[2] == 'u' ? "(knee)" : "(ankle)"), std::string::npos) << label;
    }
  }
  EXPECT_EQ(part_label_name(9), "rfuleg");
  EXPECT_EQ(part_label_name(16), "lblleg");
}

}  // namespace
}  // namespace lepard::data
