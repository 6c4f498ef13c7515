#pragma once
// A small deterministic training problem shared by the training tests: images of a
// coloured blob "animal" (an ellipse body and two leg bars) whose pseudo-labels mark the
// body (1) and legs (2), drawn at varying positions and sizes; and a configuration of a
// tiny network that trains on it in seconds.
#include <lepard/train/config.h>
#include <lepard/train/trainer.h>

#include <ATen/ATen.h>

#include <cmath>
#include <filesystem>
#include <string>

namespace lepard::testing {

inline train::Dataset blob_dataset(int64_t n, int64_t image_size, int64_t render_size, uint64_t seed) {
  train::Dataset d;
  auto images = at::zeros({n, 3, image_size, image_size}, at::kFloat);
  auto labels = at::zeros({n, render_size, render_size}, at::kByte);
  for (int64_t i = 0; i < n; ++i) {
    const double t = static_cast<double>((seed * 7919 + static_cast<uint64_t>(i) * 104729) % 1000) / 1000.0;
    const double cx = 0.25 * std::sin(6.28 * t), cy = -0.1 + 0.15 * std::cos(12.56 * t);
    const double rx = 0.4 + 0.15 * t, ry = 0.22 + 0.08 * std::sin(3.14 * t);
    auto paint = [&](const at::Tensor& target, int64_t size) {
      auto acc = target.accessor<uint8_t, 2>();
      for (int64_t r = 0; r < size; ++r)
        for (int64_t c = 0; c < size; ++c) {
          const double x = (2.0 * c + 1 - size) / size, y = (2.0 * r + 1 - size) / size;
          uint8_t v = 0;
          const double ex = (x - cx) / rx, ey = (y - cy) / ry;
          if (ex * ex + ey * ey <= 1.0) v = 1;
          for (double lx : {cx - 0.6 * rx, cx + 0.6 * rx})
            if (std::abs(x - lx) < 0.07 && y > cy && y < cy + ry + 0.45) v = v ? v : 2;
          acc[r][c] = v;
        }
    };
    auto lab = at::zeros({render_size, render_size}, at::kByte);
    paint(lab, render_size);
    labels[i] = lab;
    auto big = at::zeros({image_size, image_size}, at::kByte);
    paint(big, image_size);
    const auto b = big.to(at::kFloat);
    // Body reddish, legs bluish, background a gradient: the encoder can see the layout.
    images[i][0] = (b == 1).to(at::kFloat) * 1.5 - 0.5;
    images[i][1] = at::linspace(-1, 1, image_size).unsqueeze(0).expand({image_size, image_size}) * 0.3;
    images[i][2] = (b == 2).to(at::kFloat) * 1.5 - 0.5;
    d.ids.push_back("blob/" + std::to_string(i));
  }
  d.images = images;
  d.labels = labels;
  d.masks = at::upsample_nearest2d(labels.unsqueeze(1).to(at::kFloat), {32, 32}).squeeze(1).gt(0).to(at::kByte);
  d.clusters = 2;
  return d;
}

inline train::TrainConfig tiny_config(const std::filesystem::path& out) {
  train::TrainConfig c;
  c.data.root = out.string();
  c.model.parts = 3;
  c.model.image_size = 32;
  c.model.encoder_depth = 2;
  c.model.encoder_width = 8;
  c.model.hidden = 32;
  c.model.flow_grid = 3;
  c.model.flow_integration = 6;
  c.model.rings = 6;
  c.model.segments = 8;
  c.loss.render_size = 16;
  c.train.batch_size = 4;
  c.train.steps = 6;
  c.train.warmup = 2;
  c.train.lr = 3e-3;
  c.train.sigma_start = 1e-3;
  c.train.sigma_end = 3e-4;
  c.train.log_every = 1;
  c.train.checkpoint_every = 1000;
  c.train.validate_every = 1000;
  c.train.validate_size = 32;
  c.train.out = out.string();
  return c;
}

// Label maps (N, 48, 48) of a side-on animal facing right (even images) or left (odd, the
// mirror image of the even one before it, as a symmetric animal seen from its other side):
// 1 torso, 2 head on the facing side, 5 tail on the other, 3 and 4 two legs. The near leg is
// wide and long, the far one narrow, shorter and drawn behind. With `chiral`, 3 is the
// animal's left leg and 4 its right, so the near leg is 3 facing right and 4 facing left (as
// the surrogate's clusters behave); without, 3 is always the near leg (clusters that split the
// legs by side of the camera).
inline at::Tensor facing_labels(int64_t n, bool chiral) {
  auto maps = at::zeros({n, 48, 48}, at::kLong);
  for (int64_t i = 0; i < n; ++i) {
    const bool right = i % 2 == 0;
    const int64_t j = i / 2, cx = 22 + (j * 7) % 5, cy = 18 + (j * 3) % 4;
    auto m = maps[i];
    auto fill = [&](int64_t x0, int64_t x1, int64_t y0, int64_t y1, int64_t v) {
      m.narrow(0, y0, y1 - y0).narrow(1, x0, x1 - x0).fill_(v);
    };
    const int64_t near = chiral && !right ? 4 : 3, far = near == 3 ? 4 : 3;
    fill(cx + 2, cx + 4, cy + 4, cy + 15 + (j % 3), far);   // far leg, behind
    fill(cx - 3, cx + 1, cy + 4, cy + 20 + (j % 2), near);  // near leg
    fill(cx - 11, cx + 11, cy - 4, cy + 5, 1);              // torso
    fill(cx + 11, cx + 17, cy - 9, cy - 1, 2);              // head
    fill(cx - 14, cx - 11, cy - 2, cy + 6, 5);              // tail
    if (!right) maps[i] = m.flip({1});
  }
  return maps;
}

}  // namespace lepard::testing
