// Explicit ownership: region statistics on constructed maps; the assignment gives low thin
// parts the low thin cluster (legs) and compact parts the compact one, owns every cluster
// even against the costs, and refuses fewer parts than clusters.
#include <lepard/train/ownership.h>

#include <ATen/ATen.h>

#include <gtest/gtest.h>

#include <stdexcept>

namespace lepard::train {
namespace {

TEST(Ownership, RegionStatsOnConstructedMaps) {
  // A 40 x 40 map: region 1 a compact 20 x 20 block at the top, region 2 a 4 x 16 bar below it.
  auto map = at::zeros({1, 40, 40}, at::kLong);
  map[0].narrow(0, 0, 20).narrow(1, 10, 20).fill_(1);
  map[0].narrow(0, 20, 16).narrow(1, 12, 4).fill_(2);
  const auto st = region_stats(map, 3);
  ASSERT_EQ(st.size(), 3u);
  // The object's box spans rows 0..35 (36 rows): centroids at rows 10 and 28.
  EXPECT_NEAR(st[0].y, 10.0 / 36.0, 1e-9);
  EXPECT_NEAR(st[1].y, 28.0 / 36.0, 1e-9);
  EXPECT_NEAR(st[0].elongation, 1.0, 1e-9);
  EXPECT_NEAR(st[1].elongation, 4.0, 0.05);  // 16 x 4: standard deviations in the ratio 4
  EXPECT_NEAR(st[0].area, 400.0 / 464.0, 1e-9);
  EXPECT_EQ(st[0].images, 1);
  EXPECT_EQ(st[2].images, 0);  // absent
}

RegionStats stats(double y, double e, double a) {
  RegionStats s;
  s.y = y;
  s.elongation = e;
  s.area = a;
  s.images = 10;
  return s;
}

TEST(Ownership, LegsGoToTheLegClusterAndEveryClusterIsOwned) {
  // Clusters: 0 body (high, compact, large), 1 legs (low, elongated, small), 2 absent.
  std::vector<RegionStats> clusters = {stats(0.3, 1.5, 0.6), stats(0.8, 4.0, 0.1), RegionStats{}};
  // Parts: 0, 2 thin and low; 1, 3 compact and high.
  std::vector<RegionStats> parts = {stats(0.85, 3.5, 0.05), stats(0.35, 1.3, 0.2), stats(0.75, 5.0, 0.04),
                                    stats(0.25, 1.8, 0.3)};
  const auto o = assign_ownership(parts, clusters);
  ASSERT_EQ(o.sizes(), (at::IntArrayRef{4, 3}));
  EXPECT_TRUE(o.sum(1).eq(1).all().item<bool>());  // one cluster per part
  EXPECT_EQ(o[0][1].item<float>(), 1.0f);
  EXPECT_EQ(o[2][1].item<float>(), 1.0f);
  EXPECT_EQ(o[1][0].item<float>(), 1.0f);
  EXPECT_EQ(o[3][0].item<float>(), 1.0f);
  EXPECT_EQ(o.select(1, 2).sum().item<float>(), 0.0f);  // nobody owns an absent cluster
  // Every part looks like the body: the legs are still owned, by the part closest to them.
  std::vector<RegionStats> bodies = {stats(0.3, 1.5, 0.6), stats(0.5, 1.6, 0.5), stats(0.3, 1.4, 0.6)};
  const auto o2 = assign_ownership(bodies, clusters);
  EXPECT_EQ(o2.select(1, 1).sum().item<float>(), 1.0f);
  EXPECT_EQ(o2[1][1].item<float>(), 1.0f);
  // Fewer parts than clusters present: an error naming the setting.
  try {
    assign_ownership({stats(0.5, 1, 0.5)}, clusters);
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("model.parts"), std::string::npos) << e.what();
  }
}

TEST(Ownership, InitialOwnershipFromMapsAndTable) {
  // Two images, the same layout: parts 0 (compact, top) and 1 (bar, bottom) drawn where clusters
  // 2 (compact, top) and 1 (bar, bottom) are: part 0 owns cluster 2, part 1 cluster 1.
  auto parts = at::full({2, 40, 40}, -1, at::kLong), labels = at::zeros({2, 40, 40}, at::kLong);
  parts.narrow(1, 2, 16).narrow(2, 10, 16).fill_(0);
  parts.narrow(1, 22, 14).narrow(2, 12, 3).fill_(1);
  labels.narrow(1, 0, 20).narrow(2, 8, 20).fill_(2);
  labels.narrow(1, 20, 16).narrow(2, 12, 4).fill_(1);
  const auto o = initial_ownership(parts, labels, 2, 2);
  EXPECT_EQ(o[0][1].item<float>(), 1.0f);
  EXPECT_EQ(o[1][0].item<float>(), 1.0f);
  const auto table = ownership_table(o);
  EXPECT_NE(table.find("c1"), std::string::npos) << table;
  EXPECT_NE(table.find("  0    .   x"), std::string::npos) << table;
}

}  // namespace
}  // namespace lepard::train
