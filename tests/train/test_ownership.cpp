// Explicit ownership: region statistics on constructed maps; the assignment gives low thin
// parts the low thin cluster (legs) and compact parts the compact one, owns every cluster
// even against the costs, and refuses fewer parts than clusters.
#include <lepard/train/ownership.h>

#include <lepard/data/keypoints.h>
#include <lepard/data/menagerie.h>

#include <ATen/ATen.h>

#include "training_fixture.h"

#include <gtest/gtest.h>

#include <array>

#include <stdexcept>
#include <utility>

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

// Two images, the same layout: parts 0 (compact, top) and 1 (bar, bottom) drawn where clusters
// 2 (compact, top) and 1 (bar, bottom) are.
std::pair<at::Tensor, at::Tensor> compact_and_bar_scene() {
  auto parts = at::full({2, 40, 40}, -1, at::kLong), labels = at::zeros({2, 40, 40}, at::kLong);
  parts.narrow(1, 2, 16).narrow(2, 10, 16).fill_(0);
  parts.narrow(1, 22, 14).narrow(2, 12, 3).fill_(1);
  labels.narrow(1, 0, 20).narrow(2, 8, 20).fill_(2);
  labels.narrow(1, 20, 16).narrow(2, 12, 4).fill_(1);
  return {parts, labels};
}

TEST(Ownership, InitialOwnershipFromMapsAndTable) {
  // Part 0 owns cluster 2, part 1 cluster 1.
  const auto [parts, labels] = compact_and_bar_scene();
  const auto o = initial_ownership(parts, labels, 2, 2);
  EXPECT_EQ(o[0][1].item<float>(), 1.0f);
  EXPECT_EQ(o[1][0].item<float>(), 1.0f);
  const auto table = ownership_table(o);
  EXPECT_NE(table.find("c1"), std::string::npos) << table;
  EXPECT_NE(table.find("  0    .   x"), std::string::npos) << table;
}

// rim_shares: the share of each cluster's pixels with a background pixel among their 8
// neighbours, against a brute-force count; a one-pixel ring around the object is all rim, the
// interior none, and the map's edge is not background.
TEST(Ownership, RimSharesCountTheClustersPixelsOnTheOutline) {
  auto labels = at::zeros({2, 12, 12}, at::kLong);
  labels[0].narrow(0, 2, 8).narrow(1, 2, 8).fill_(2);   // the ring ...
  labels[0].narrow(0, 3, 6).narrow(1, 3, 6).fill_(1);   // ... around the interior
  labels[1].narrow(0, 0, 4).narrow(1, 0, 12).fill_(3);  // a band along the top edge
  labels[1][5][5] = 1;                                  // an isolated pixel of cluster 1
  const auto shares = rim_shares(labels, 4);
  ASSERT_EQ(shares.size(), 4u);
  const auto a = labels.accessor<int64_t, 3>();
  std::array<double, 5> all{}, near{};
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t y = 0; y < 12; ++y)
      for (int64_t x = 0; x < 12; ++x) {
        const auto c = a[n][y][x];
        if (c == 0) continue;
        bool touch = false;
        for (int64_t dy = -1; dy <= 1; ++dy)
          for (int64_t dx = -1; dx <= 1; ++dx) {
            const int64_t yy = y + dy, xx = x + dx;
            if (yy >= 0 && yy < 12 && xx >= 0 && xx < 12 && a[n][yy][xx] == 0) touch = true;
          }
        all[static_cast<size_t>(c)] += 1;
        near[static_cast<size_t>(c)] += touch ? 1 : 0;
      }
  for (size_t c = 1; c <= 3; ++c) EXPECT_DOUBLE_EQ(shares[c - 1], near[c] / all[c]) << c;
  EXPECT_DOUBLE_EQ(shares[1], 1.0);          // the ring
  EXPECT_DOUBLE_EQ(shares[0], 1.0 / 37.0);   // 36 interior pixels and the isolated one
  EXPECT_DOUBLE_EQ(shares[2], 12.0 / 48.0);  // the band's bottom row only
  EXPECT_DOUBLE_EQ(shares[3], 0.0);          // no pixel
  EXPECT_THROW(rim_shares(labels[0], 4), std::invalid_argument);
}

// initial_ownership's exclude: an excluded cluster is owned by nobody, as if absent, and the
// parts go to the others.
TEST(Ownership, ExcludedClustersAreOwnedByNobody) {
  // The compact-and-bar scene with a flat strip of cluster 3 along the bottom and a third
  // part drawn over it.
  auto [parts, labels] = compact_and_bar_scene();
  parts.narrow(1, 36, 2).narrow(2, 8, 20).fill_(2);
  labels.narrow(1, 36, 2).narrow(2, 8, 20).fill_(3);
  const auto with = initial_ownership(parts, labels, 3, 3);
  EXPECT_EQ(with[2][2].item<float>(), 1.0f);  // every cluster owned, the strip by the strip's part
  const auto without = initial_ownership(parts, labels, 3, 3, 0.0, 0, {false, false, true});
  EXPECT_EQ(without.sum(0)[2].item<float>(), 0.0f);
  EXPECT_EQ(without[0][1].item<float>(), 1.0f);
  EXPECT_EQ(without[1][0].item<float>(), 1.0f);
  EXPECT_EQ(without[2].sum().item<float>(), 1.0f);  // the third part goes to one of the others
  EXPECT_THROW(initial_ownership(parts, labels, 3, 3, 0.0, 0, {true}), std::invalid_argument);
}

TEST(Ownership, SlackSharesTheClustersAPartCannotTellApart) {
  // Two leg clusters (both low and thin, one twice the area of the other) and a body.
  std::vector<RegionStats> clusters = {stats(0.3, 1.5, 0.6), stats(0.8, 4.0, 0.1), stats(0.78, 3.5, 0.2)};
  std::vector<RegionStats> parts = {stats(0.8, 4.0, 0.1), stats(0.3, 1.5, 0.6), stats(0.8, 4.2, 0.1)};
  const auto one = assign_ownership(parts, clusters);
  EXPECT_TRUE(one.sum(1).eq(1).all().item<bool>());
  // With a slack above the legs' cost difference, both thin parts own both leg clusters; the
  // body part, far from the legs, owns only the body.
  const auto shared = assign_ownership(parts, clusters, 1.0);
  EXPECT_EQ(shared[0][1].item<float>() + shared[0][2].item<float>(), 2.0f);
  EXPECT_EQ(shared[2][1].item<float>() + shared[2][2].item<float>(), 2.0f);
  EXPECT_EQ(shared[1].sum().item<float>(), 1.0f);
  EXPECT_EQ(shared[1][0].item<float>(), 1.0f);
  // The assignment under the slack still contains the one without it.
  EXPECT_TRUE((shared >= one).all().item<bool>());
  EXPECT_THROW(assign_ownership(parts, clusters, -1.0), std::invalid_argument);
}

TEST(Ownership, CapacityMovesTheCheapestPartsOutOfACrowdedCluster) {
  // Three clusters at heights 0.2, 0.5, 0.8; five parts that all sit nearest cluster 0 (parts 0,
  // 1, 2 at 0.2, 0.21, 0.19; parts 3, 4 at 0.3, 0.32).
  std::vector<RegionStats> clusters = {stats(0.2, 1.2, 0.3), stats(0.5, 1.2, 0.3), stats(0.8, 1.2, 0.3)};
  std::vector<RegionStats> parts = {stats(0.2, 1.2, 0.3), stats(0.21, 1.2, 0.3), stats(0.19, 1.2, 0.3),
                                    stats(0.3, 1.2, 0.3), stats(0.32, 1.2, 0.3)};
  const auto free = assign_ownership(parts, clusters);
  EXPECT_EQ(free.select(1, 0).sum().item<float>(), 3.0f);  // every cluster owned, the rest to cluster 0
  const auto capped = assign_ownership(parts, clusters, 0.0, 2);
  ASSERT_TRUE(capped.sum(1).eq(1).all().item<bool>());
  EXPECT_TRUE(capped.sum(0).le(2).all().item<bool>()) << capped;
  // Coverage sends parts 3 and 4 to clusters 1 and 2; of the three left on cluster 0, the one
  // that costs least to move (part 1, the nearest to cluster 1) moves to cluster 1.
  EXPECT_EQ(capped[3][1].item<float>(), 1.0f);
  EXPECT_EQ(capped[4][2].item<float>(), 1.0f);
  EXPECT_EQ(capped[0][0].item<float>(), 1.0f);
  EXPECT_EQ(capped[2][0].item<float>(), 1.0f);
  EXPECT_EQ(capped[1][1].item<float>(), 1.0f);
  // Too small a capacity for the parts: an error naming the setting.
  try {
    assign_ownership(parts, clusters, 0.0, 1);
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("loss.ownership_capacity"), std::string::npos) << e.what();
  }
}

// Per-image split of shared clusters on a constructed 20 x 20 map. Cluster 1 (parts 0, 1, 2)
// has three pieces: a 4 x 4 block at the left, one at the right and a 1-pixel speck near the
// right block (under the size threshold: it joins the right piece). Cluster 2 (part 3 only)
// has two pieces and is left alone: one owner. Cluster 3 (parts 4, 5) has one piece: left
// alone. Each block gets one owner, the pair with the least summed squared distance; the
// owner left over joins its nearest block.
TEST(Ownership, SplitGivesEachPieceOfASharedClusterTheNearestOwner) {
  auto labels = at::zeros({1, 20, 20}, at::kLong);
  labels[0].narrow(0, 2, 4).narrow(1, 0, 4).fill_(1);   // left block, centroid x cols 1.5
  labels[0].narrow(0, 2, 4).narrow(1, 16, 4).fill_(1);  // right block, cols 17.5
  labels[0][9][14] = 1;                                 // speck, nearest the right block
  labels[0].narrow(0, 12, 2).narrow(1, 0, 2).fill_(2);  // cluster 2, two pieces
  labels[0].narrow(0, 12, 2).narrow(1, 18, 2).fill_(2);
  labels[0].narrow(0, 16, 3).narrow(1, 8, 4).fill_(3);  // cluster 3, one piece
  auto own = at::zeros({6, 3}, at::kFloat);
  own[0][0] = own[1][0] = own[2][0] = 1;
  own[3][1] = 1;
  own[4][2] = own[5][2] = 1;
  // Pixel-centre coordinates of column c on 20: (2c + 1 - 20) / 20; rows alike.
  auto at_col = [](double col) { return (2 * col + 1 - 20) / 20.0; };
  auto centres = at::zeros({1, 6, 2}, at::kDouble);
  const double row = at_col(3.5);
  const double cols[6] = {7.0, 9.0, 19.0, 10.0, 9.0, 10.0};
  for (int64_t k = 0; k < 6; ++k) {
    centres[0][k][0] = at_col(cols[k]);
    centres[0][k][1] = row;
  }
  const auto split = split_shared_clusters(labels, own, centres, 0.1);
  ASSERT_EQ(split.ownership.sizes(), at::IntArrayRef({1, 6, 4}));  // one extra id: cluster 1's right piece
  const auto l = split.labels[0];
  EXPECT_EQ(l[3][1].item<int64_t>(), 1);   // the largest piece first (equal sizes: raster order) keeps id 1
  EXPECT_EQ(l[3][17].item<int64_t>(), 4);  // the right block: id C + 1
  EXPECT_EQ(l[9][14].item<int64_t>(), 4);  // the speck joined it
  EXPECT_EQ(l[12][0].item<int64_t>(), 2);  // cluster 2: unchanged (one owner)
  EXPECT_EQ(l[12][18].item<int64_t>(), 2);
  EXPECT_EQ(l[17][9].item<int64_t>(), 3);  // cluster 3: unchanged (one piece)
  const auto o = split.ownership[0];
  auto owns = [&](int64_t part, int64_t id) { return o[part][id - 1].item<float>() > 0.5f; };
  // Squared distances in columns (left block at 1.5, right at 17.5): part 0 (col 7) 30.25 and
  // 110.25, part 1 (col 9) 56.25 and 72.25, part 2 (col 19) 306.25 and 2.25. The least sum
  // with one owner per block: part 0 left, part 2 right (32.5).
  EXPECT_TRUE(owns(2, 4));
  EXPECT_TRUE(owns(0, 1));
  EXPECT_FALSE(owns(0, 4));
  EXPECT_FALSE(owns(2, 1));
  // Part 1, left over, joins its nearest piece: the left block (7.5 columns away, against 8.5).
  EXPECT_TRUE(owns(1, 1));
  EXPECT_FALSE(owns(1, 4));
  EXPECT_TRUE(owns(3, 2));
  EXPECT_TRUE(owns(4, 3) && owns(5, 3));
  EXPECT_EQ(o.sum().item<float>(), 6.0f);  // one id per part
  // Two images, the second with only cluster 1's left block: nothing to split, its extra
  // column is empty and it keeps the shared table.
  auto only_left = at::zeros_like(labels);
  only_left[0].narrow(0, 2, 4).narrow(1, 0, 4).fill_(1);
  const auto two = split_shared_clusters(at::cat({labels, only_left}), own, at::cat({centres, centres}), 0.1);
  EXPECT_EQ(two.ownership.size(2), 4);
  EXPECT_EQ(two.ownership[1].select(1, 3).sum().item<float>(), 0.0f);
  EXPECT_TRUE(at::equal(two.ownership[1].narrow(1, 0, 3), own));
  EXPECT_TRUE(at::equal(two.labels[1], only_left[0]));
}

// The exact matching, where closest pair first would not do: two owners, two pieces, owner 0
// near the gap (closest to the left piece), owner 1 far left. Least sum: owner 0 right, owner 1 left.
TEST(Ownership, SplitMatchesOwnersToPiecesWithTheLeastSummedDistance) {
  auto labels = at::zeros({1, 8, 20}, at::kLong);
  labels[0].narrow(0, 2, 4).narrow(1, 4, 4).fill_(1);   // left piece, cols 4..7, centre 5.5
  labels[0].narrow(0, 2, 4).narrow(1, 14, 4).fill_(1);  // right piece, cols 14..17, centre 15.5
  auto own = at::ones({2, 1}, at::kFloat);
  auto centres = at::zeros({1, 2, 2}, at::kDouble);
  centres[0][0][0] = (2 * 7.0 + 1 - 20) / 20.0;  // col 7: 1.5 from the left piece, 8.5 from the right
  centres[0][1][0] = (2 * 0.0 + 1 - 20) / 20.0;  // col 0: 5.5 from the left piece
  const auto split = split_shared_clusters(labels, own, centres, 0.1);
  // Owner 0 left + owner 1 right: 2.25 + 240.25; owner 0 right + owner 1 left: 72.25 + 30.25.
  EXPECT_GT(split.ownership[0][0][1].item<float>(), 0.5f);  // owner 0: the right piece (id 2)
  EXPECT_GT(split.ownership[0][1][0].item<float>(), 0.5f);  // owner 1: the left piece (id 1)
  EXPECT_EQ(split.ownership.sum().item<float>(), 2.0f);
  EXPECT_THROW(split_shared_clusters(labels, own, at::zeros({1, 3, 2}, at::kDouble), 0.1), std::invalid_argument);
}

TEST(Ownership, TableRoundTripsAndBadTablesNameTheLine) {
  auto o = at::zeros({3, 2}, at::kFloat);
  o[0][1] = 1.0f;
  o[1][0] = 1.0f;
  o[1][1] = 1.0f;
  o[2][0] = 1.0f;
  const auto text = "# a comment\n\n" + ownership_table(o);
  EXPECT_TRUE(parse_ownership_table(text, 3, 2, "t.txt").equal(o)) << text;
  auto error = [](const std::string& bad, int64_t k, int64_t c) {
    try {
      parse_ownership_table(bad, k, c, "own.txt");
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string header = "part  c1 c2\n";
  EXPECT_NE(error(header + "0 . x\n1 x q\n2 x .\n", 3, 2).find("own.txt:3: entry \"q\""), std::string::npos);
  EXPECT_NE(error(header + "0 . x\n1 x .\n", 3, 2).find("the table has 2 parts, the model 3"), std::string::npos);
  EXPECT_NE(error(header + "0 . x\n", 1, 3).find("own.txt:1: the table has 2 clusters"), std::string::npos);
  EXPECT_NE(error(header + "1 . x\n", 1, 2).find("own.txt:2: expected the row of part 0"), std::string::npos);
  EXPECT_NE(error(header + "0 . x .\n", 1, 2).find("has 3 entries, expected 2"), std::string::npos);
  EXPECT_NE(error("0 . x\n", 1, 2).find("own.txt:1: expected the header"), std::string::npos);
  EXPECT_NE(error("# nothing\n", 1, 2).find("no table"), std::string::npos);
}

TEST(Ownership, MirrorPairsTheClustersThatSwapWithTheFacing) {
  // Chiral clusters: the two legs trade places with the facing, so a flip must swap them.
  const auto chiral = estimate_cluster_mirror(testing::facing_labels(40, true), 6);
  EXPECT_EQ(chiral.partner, (std::vector<int64_t>{0, 1, 3, 2, 4, 5})) << cluster_mirror_text(chiral.partner);
  EXPECT_EQ(cluster_mirror_text(chiral.partner), "c1 c2 c3<->c4 c5 c6");
  EXPECT_GE(chiral.side_images, 20);  // the half with the larger facing component, at least
  EXPECT_LE(chiral.side_images, 40);
  // Near/far clusters already look alike in both facings: nothing to swap.
  const auto sided = estimate_cluster_mirror(testing::facing_labels(40, false), 6);
  EXPECT_EQ(sided.partner, (std::vector<int64_t>{0, 1, 2, 3, 4, 5})) << cluster_mirror_text(sided.partner);
  EXPECT_GT(chiral.self_cost[2], 100.0);  // a chiral leg is far from its own mirror image
  EXPECT_LT(sided.self_cost[2], 8.0);
  EXPECT_THROW(estimate_cluster_mirror(at::zeros({2, 4, 4}, at::kLong), 21), std::invalid_argument);
  EXPECT_THROW(estimate_cluster_mirror(at::zeros({4, 4}, at::kLong), 2), std::invalid_argument);
}

TEST(Ownership, MirrorOfTheMenageriesPartLabelsIsTheirLeftRightMirror) {
  // The synthetic horses' ground-truth part labels as clusters (LASSIE ids 1..16, 5..8
  // unused): every leg label pairs with its mirror label, neck, head, torso and tail stay.
  const int64_t n = 160;
  auto maps = at::zeros({n, 64, 64}, at::kLong);
  for (int64_t i = 0; i < n; ++i)
    maps[i] = data::render_synthetic("horse", 64, 1000 + static_cast<uint64_t>(i)).parts.to(at::kLong);
  const auto mirror = estimate_cluster_mirror(maps, data::kNumPartLabels);
  for (int64_t label = 1; label <= data::kNumPartLabels; ++label) {
    const int64_t want = data::part_label_mirror(label);
    EXPECT_EQ(mirror.partner[static_cast<size_t>(label - 1)] + 1, want >= 1 ? want : label)
        << data::part_label_name(label) << ": " << cluster_mirror_text(mirror.partner);
  }
}

}  // namespace
}  // namespace lepard::train
