// Pictures for reports: the part-id overlay blends each covered pixel with its part's
// palette colour and leaves the background untouched, checked pixel by pixel.
#include <lepard/render/pictures.h>

#include <ATen/CPUGeneratorImpl.h>
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
            const double expected = k < 0 ? img : std::trunc(img * (1.0 - alpha) + palette[k][c].item<uint8_t>() * alpha);
            EXPECT_NEAR(out[b][y][x][c].item<uint8_t>(), expected, 1.0) << "alpha " << alpha << " pixel " << b << "," << y
                                                                         << "," << x << " part " << k;
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

}  // namespace
}  // namespace lepard::render
