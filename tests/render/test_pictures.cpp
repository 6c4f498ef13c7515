// Pictures for reports: the part-id overlay blends each covered pixel with its part's
// palette colour and leaves the background untouched, checked pixel by pixel.
#include <lepard/render/pictures.h>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/ops/full.h>
#include <ATen/ops/randint.h>
#include <ATen/ops/zeros.h>
#include <gtest/gtest.h>

#include <cmath>

namespace lepard::render {
namespace {

TEST(Pictures, OverlayBlendsCoveredPixelsOnly) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(7);
  const int64_t B = 2, H = 5, W = 6, K = 4;
  const auto images = at::randint(0, 256, {B, H, W, 3}, gen, at::TensorOptions().dtype(at::kByte));
  const auto ids = at::randint(-1, K, {B, H, W}, gen, at::TensorOptions().dtype(at::kLong));
  const auto palette = part_palette(K);
  for (double alpha : {0.0, 0.55, 1.0}) {
    const auto out = overlay_part_ids(images, ids, alpha);
    ASSERT_EQ(out.sizes(), images.sizes());
    ASSERT_EQ(out.scalar_type(), at::kByte);
    int64_t covered = 0;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t y = 0; y < H; ++y)
        for (int64_t x = 0; x < W; ++x) {
          const int64_t k = ids[b][y][x].item<int64_t>();
          covered += k >= 0;
          for (int64_t c = 0; c < 3; ++c) {
            const double img = images[b][y][x][c].item<uint8_t>();
            const double expected =
                k < 0 ? img : std::trunc(img * (1.0 - alpha) + palette[k][c].item<uint8_t>() * alpha);
            EXPECT_NEAR(out[b][y][x][c].item<uint8_t>(), expected, 1.0)
                << "alpha " << alpha << " pixel " << b << "," << y << "," << x << " part " << k;
            if (k < 0) {
              EXPECT_EQ(out[b][y][x][c].item<uint8_t>(), images[b][y][x][c].item<uint8_t>());
            }
          }
        }
    ASSERT_GT(covered, 0);
    ASSERT_LT(covered, B * H * W);
  }
}

TEST(Pictures, OverlayRejectsMismatchedShapes) {
  const auto images = at::zeros({1, 4, 4, 3}, at::TensorOptions().dtype(at::kByte));
  EXPECT_THROW(overlay_part_ids(images, at::zeros({1, 4, 5}, at::TensorOptions().dtype(at::kLong))), c10::Error);
  EXPECT_THROW(overlay_part_ids(images.to(at::kFloat), at::zeros({1, 4, 4}, at::TensorOptions().dtype(at::kLong))),
               c10::Error);
  EXPECT_THROW(overlay_part_ids(images, at::zeros({1, 4, 4}, at::TensorOptions().dtype(at::kLong)), 1.5), c10::Error);
}

TEST(Pictures, PartsTakeTheirOwnedClustersPseudoLabelColour) {
  // Four parts, three clusters: parts 0 and 2 own cluster 1 (two leg segments), part 1 owns
  // cluster 0, part 3 owns none.
  auto own = at::zeros({4, 3}, at::kFloat);
  own[0][1] = 1;
  own[2][1] = 1;
  own[1][0] = 1;
  const auto palette = owned_cluster_palette(own);
  const auto labels = part_palette(4);  // lepard-prepare's colours: row c + 1 for cluster c
  ASSERT_EQ(palette.sizes(), (at::IntArrayRef{4, 3}));
  EXPECT_TRUE(palette[0].equal(labels[2]));
  EXPECT_TRUE(palette[2].equal(labels[2]));
  EXPECT_TRUE(palette[1].equal(labels[1]));
  EXPECT_EQ(palette[3][0].item<uint8_t>(), 128);
  // A part that owns clusters 0 and 2: the mean of their colours.
  own[3][0] = 1;
  own[3][2] = 1;
  const auto mixed = owned_cluster_palette(own)[3].to(at::kInt);
  const auto expected = labels[1].to(at::kFloat).add(labels[3].to(at::kFloat)).div(2).round().to(at::kInt);
  EXPECT_TRUE(mixed.equal(expected)) << mixed << expected;
  own[3].zero_();
  // Overlays and part-id pictures use it when given.
  auto ids = at::full({1, 1, 4}, -1, at::kLong);
  ids[0][0][1] = 0;
  ids[0][0][2] = 2;
  ids[0][0][3] = 1;
  const auto rgb = colorize_part_ids(ids, palette);
  EXPECT_TRUE(rgb[0][0][1].equal(labels[2]));
  EXPECT_TRUE(rgb[0][0][2].equal(labels[2]));
  EXPECT_TRUE(rgb[0][0][3].equal(labels[1]));
  EXPECT_EQ(rgb[0][0][0].sum().item<int64_t>(), 0);
  const auto over = overlay_part_ids(at::zeros({1, 1, 4, 3}, at::kByte), ids, 1.0, palette);
  EXPECT_TRUE(over[0][0][2].equal(labels[2]));
  EXPECT_THROW(colorize_part_ids(ids, palette.narrow(0, 0, 2)), c10::Error);  // no row for part 2
}

}  // namespace
}  // namespace lepard::render
