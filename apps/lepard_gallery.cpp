// lepard-gallery: write a gallery of deformable primitives (superquadrics with taper,
// bend and diffeomorphic local deformation) as OBJ files, one line of parameters each.
#include "cli/cli.h"

#include <lepard/core/local_flow.h>
#include <lepard/core/project_parts.h>
#include <lepard/core/superquadric.h>
#include <lepard/core/surface_grid.h>
#include <lepard/io/image_io.h>
#include <lepard/io/mesh_io.h>
#include <lepard/render/hard_rasterize.h>
#include <lepard/render/pictures.h>
#include <lepard/render/soft_rasterize.h>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/TensorOperators.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/linspace.h>
#include <ATen/ops/rand.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <spdlog/spdlog.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

namespace {

using namespace lepard;
namespace fs = std::filesystem;

struct Primitive {
  std::string name;
  std::vector<double> shape;  // q_s, 11 values
  std::string local;          // "" for none, else a named velocity pattern
  double strength = 0.0;      // max control value of the velocity

  Primitive(std::string n, std::vector<double> q, std::string l = "", double v = 0.0)
      : name(std::move(n)), shape(std::move(q)), local(std::move(l)), strength(v) {}
};

// The presets: the kinds of shape the global and local deformations can make.
std::vector<Primitive> presets() {
  //            a0   a1    a2    a3    e1   e2   t1    t2    b1    b2   b3
  return {
      {"sphere", {1.0, 0.5, 0.5, 0.5, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0}},
      {"box", {1.0, 0.5, 0.4, 0.3, 0.2, 0.2, 0.0, 0.0, 0.0, 0.0, 0.0}},
      {"cylinder", {1.0, 0.3, 0.3, 0.6, 0.2, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0}},
      {"pillow", {1.0, 0.5, 0.5, 0.3, 1.7, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0}},
      {"leg", {1.0, 0.15, 0.15, 0.6, 0.8, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0}},
      {"tapered_cone", {1.0, 0.35, 0.35, 0.6, 0.5, 1.0, -0.85, -0.85, 0.0, 0.0, 0.0}},
      {"bent_tail", {1.0, 0.1, 0.1, 0.7, 1.0, 1.0, 0.0, 0.0, 0.25, 0.0, 0.45}},
      {"tapered_bent_horn", {1.0, 0.2, 0.2, 0.6, 0.9, 1.0, -0.8, -0.8, 0.2, 0.1, 0.5}},
      {"torso_local_bulge", {1.0, 0.6, 0.35, 0.3, 0.5, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0}, "bulge", 0.3},
      {"head_local_twist", {1.0, 0.4, 0.25, 0.25, 0.7, 0.9, 0.3, 0.0, 0.0, 0.0, 0.0}, "twist", 0.25},
  };
}

// Control values (1, 1, 3, G, G, G) of a smooth velocity pattern on the control grid over [-1, 1]^3.
at::Tensor velocity_pattern(const std::string& pattern, double strength, int64_t G, at::Generator& gen) {
  const auto r = at::linspace(-1.0, 1.0, G, at::kDouble);
  const auto z = r.view({G, 1, 1}).expand({G, G, G});
  const auto y = r.view({1, G, 1}).expand({G, G, G});
  const auto x = r.view({1, 1, G}).expand({G, G, G});
  at::Tensor v;
  if (pattern == "bulge") {  // push the +x half outwards along x, strongest at x = 0.8
    const auto w = (-((x - 0.8) * (x - 0.8) + y * y + z * z) / 0.3).exp();
    v = at::stack({w, 0.3 * w * y, 0.3 * w * z}, 0) * strength;
  } else if (pattern == "twist") {  // rotate about z, more at the top
    v = at::stack({-y * (z + 1) / 2, x * (z + 1) / 2, at::zeros({G, G, G}, at::kDouble)}, 0) * strength;
  } else {  // random control values
    v = (at::rand({3, G, G, G}, gen, at::TensorOptions().dtype(at::kDouble)) * 2 - 1) * strength;
  }
  return v.view({1, 1, 3, G, G, G});
}

std::string parameter_line(const Primitive& p) {
  static const char* names[] = {"a0", "a1", "a2", "a3", "e1", "e2", "t1", "t2", "b1", "b2", "b3"};
  std::ostringstream s;
  s.precision(4);
  s << "lepard primitive '" << p.name << "':";
  for (int i = 0; i < 11; ++i) s << " " << names[i] << "=" << p.shape[i];
  if (p.local.empty()) {
    s << " local=none";
  } else {
    s << " local=" << p.local << "(max_control=" << p.strength << ")";
  }
  return s.str();
}

// A camera looking at the object frame's origin from `distance`, turned so that parts
// are seen in three-quarter view.
core::Camera three_quarter_camera(int64_t B, double distance) {
  const double angle = 50.0 * M_PI / 180.0, ax = 0.8, ay = 0.6;  // about the unit axis (0.8, 0.6, 0)
  const auto q =
      at::tensor({std::cos(angle / 2), ax * std::sin(angle / 2), ay * std::sin(angle / 2), 0.0}, at::kDouble);
  return {q.repeat({B, 1}), at::tensor({0.0, 0.0, distance}, at::kDouble).repeat({B, 1}), 2.0};
}

// Renders parts (B, K) and writes the sheet of soft and hard renders as a PNG.
void write_render_sheet(const fs::path& path, const core::PartParams& params, const at::Tensor& local,
                        const core::SurfaceGrid& grid, int64_t size, double distance) {
  const int64_t B = params.shape.size(0);
  const auto verts = core::project_parts(params, local, three_quarter_camera(B, distance), grid);
  render::SoftRasterSettings s;
  s.height = s.width = size;
  s.sigma = 1e-4 * (64.0 / size) * (64.0 / size);  // about a pixel wide at any size
  const auto silhouettes = render::soft_silhouettes(verts, grid.faces, s);
  const auto fragments = render::rasterize_hard(verts, grid.faces, size, size);
  const auto colours = render::soft_part_colours(verts, grid.faces, size, size, s.sigma);
  io::write_png(path, render::render_sheet(silhouettes, colours, fragments));
}

// Random assemblies of K parts around the origin, to show part colours and occlusion.
core::PartParams random_assemblies(int64_t B, int64_t K, at::Generator& gen) {
  const auto opt = at::TensorOptions().dtype(at::kDouble);
  core::PartParams p;
  p.center = (at::rand({B, K, 3}, gen, opt) * 2 - 1) * at::tensor({0.6, 0.4, 0.4}, at::kDouble);
  p.rotation = at::rand({B, K, 4}, gen, opt) * 2 - 1;
  const auto lo = at::tensor({0.15, 0.4, 0.4, 0.6, 0.3, 0.3, -0.6, -0.6, -0.2, -0.2, 0.0}, at::kDouble);
  const auto hi = at::tensor({0.35, 1.0, 1.0, 1.0, 1.5, 1.5, 0.6, 0.6, 0.2, 0.2, 1.0}, at::kDouble);
  p.shape = lo + at::rand({B, K, 11}, gen, opt) * (hi - lo);
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  cli::tune_runtime(argv);
  std::string out = "runs/demo/gallery";
  int64_t rings = 20, segments = 32, random = 4, seed = 1, image_size = 128, threads = cli::default_threads();
  bool render_pictures = true;
  double max_velocity = core::LocalFlowOptions{}.max_positive_velocity;
  cli::Parser parser("lepard-gallery",
                     "Writes deformable primitives (superquadric + taper + bend + local flow) as OBJ files,\n"
                     "one per primitive with a comment line of its parameters, and gallery.obj with all of\n"
                     "them side by side.");
  parser.flag("out", &out, "output folder")
      .flag("rings", &rings, "latitude rings of the surface grid")
      .flag("segments", &segments, "longitude segments of the surface grid")
      .flag("random", &random, "random primitives to add to the presets")
      .flag("seed", &seed, "seed of the random primitives")
      .flag("max-velocity", &max_velocity, "bound of the random local-flow control values (normalised units)")
      .flag("render", &render_pictures, "also render PNG sheets: gallery.png and assemblies.png")
      .flag("image-size", &image_size, "side of each rendered image, pixels")
      .flag("threads", &threads, "intra-op threads")
      .epilog("example:\n  lepard-gallery --out runs/demo/gallery --random 8 --seed 3");
  parser.parse(argc, argv);
  cli::init_logging();
  try {
    cli::set_threads(threads);
    if (rings < 1 || segments < 3) throw std::invalid_argument("--rings must be >= 1 and --segments >= 3");
    if (random < 0) throw std::invalid_argument("--random must be >= 0");

    const auto grid = core::make_surface_grid(rings, segments);
    const core::LocalFlowOptions flow;
    auto gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(seed));
    auto prims = presets();
    for (int64_t i = 0; i < random; ++i) {
      const auto u = at::rand({11}, gen, at::TensorOptions().dtype(at::kDouble));
      const auto lo = at::tensor({0.8, 0.1, 0.1, 0.1, 0.2, 0.2, -0.9, -0.9, -0.2, -0.3, 0.0}, at::kDouble);
      const auto hi = at::tensor({1.2, 0.6, 0.6, 0.6, 1.7, 1.7, 0.9, 0.9, 0.2, 0.3, 1.0}, at::kDouble);
      const auto q = (lo + u * (hi - lo)).contiguous();
      prims.push_back({"random_" + std::to_string(i),
                       std::vector<double>(q.data_ptr<double>(), q.data_ptr<double>() + 11), "random", max_velocity});
    }

    if (image_size < 8) throw std::invalid_argument("--image-size must be at least 8");
    std::vector<at::Tensor> placed, shapes, locals;
    double cursor = 0.0;
    for (size_t i = 0; i < prims.size(); ++i) {
      const auto& p = prims[i];
      const auto shape = at::tensor(p.shape, at::kDouble).view({1, 1, 11});
      const auto s = core::superquadric_points(shape.unsqueeze(-2), grid.trig);  // (1, 1, V, 3)
      at::Tensor local;
      if (!p.local.empty()) {
        local = core::local_displacement(shape, s, velocity_pattern(p.local, p.strength, flow.grid_size, gen), flow);
      }
      shapes.push_back(shape);
      locals.push_back(local.defined() ? local : at::zeros_like(s));
      const auto verts = (local.defined() ? s + local : s).squeeze(0);  // (1, V, 3)
      char file[256];
      std::snprintf(file, sizeof(file), "%02zu_%s.obj", i, p.name.c_str());
      io::write_obj(fs::path(out) / file, verts, grid.faces, {parameter_line(p)});
      std::printf("%-32s %s\n", file, parameter_line(p).c_str());
      // Lay the primitives out along x for gallery.obj.
      const double half = verts.select(-1, 0).abs().max().item<double>();
      placed.push_back(verts + at::tensor({cursor + half, 0.0, 0.0}, at::kDouble));
      cursor += 2 * half + 0.3;
    }
    io::write_obj(fs::path(out) / "gallery.obj", at::cat(placed, 0), grid.faces,
                  {"lepard primitive gallery: " + std::to_string(prims.size()) + " primitives, " +
                   std::to_string(grid.num_vertices()) + " vertices each, one object per primitive"});
    spdlog::info("wrote {} primitives and gallery.obj to {}", prims.size(), out);
    if (render_pictures) {
      // Every primitive in its own image (rows: soft silhouette, soft parts, hard ids, depth).
      const int64_t n = static_cast<int64_t>(prims.size());
      core::PartParams gallery;
      gallery.shape = at::cat(shapes, 0);  // (n, 1, 11)
      gallery.center = at::zeros({n, 1, 3}, at::kDouble);
      gallery.rotation = at::tensor({1.0, 0.0, 0.0, 0.0}, at::kDouble).repeat({n, 1, 1});
      write_render_sheet(fs::path(out) / "gallery.png", gallery, at::cat(locals, 0), grid, image_size, 2.2);
      write_render_sheet(fs::path(out) / "assemblies.png", random_assemblies(4, 8, gen), at::Tensor(), grid, image_size,
                         2.0);
      spdlog::info("rendered gallery.png ({} primitives) and assemblies.png (4 images of 8 parts)", n);
    }
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
  return 0;
}
