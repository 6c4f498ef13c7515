// OBJ export and atomic writes.
#include <lepard/core/superquadric.h>
#include <lepard/core/surface_grid.h>
#include <lepard/io/atomic_file.h>
#include <lepard/io/mesh_io.h>

#include "test_support.h"

#include <ATen/ops/stack.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>

#include <unistd.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace lepard::io {
namespace {

namespace fs = std::filesystem;

TEST(MeshIo, ObjRoundTripsVerticesAndFaces) {
  const auto dir = testing::temp_dir("obj");
  const auto grid = core::make_surface_grid(4, 6);
  const auto shapes = testing::random_shape({2}, at::kDouble, 1);
  const auto verts = core::superquadric_points(shapes.unsqueeze(1), grid.trig);  // (2, V, 3)
  write_obj(dir / "parts.obj", verts, grid.faces, {"params: test"});
  std::ifstream in(dir / "parts.obj");
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "# params: test");
  std::vector<std::vector<double>> vs;
  std::vector<std::vector<long>> fs_;
  int objects = 0;
  while (std::getline(in, line)) {
    std::istringstream ss(line);
    std::string tag;
    ss >> tag;
    if (tag == "o") ++objects;
    if (tag == "v") { double x, y, z; ss >> x >> y >> z; vs.push_back({x, y, z}); }
    if (tag == "f") { long a, b, c; ss >> a >> b >> c; fs_.push_back({a, b, c}); }
  }
  EXPECT_EQ(objects, 2);
  ASSERT_EQ(static_cast<int64_t>(vs.size()), 2 * grid.num_vertices());
  ASSERT_EQ(static_cast<int64_t>(fs_.size()), 2 * grid.num_faces());
  const auto V = grid.num_vertices();
  EXPECT_NEAR(vs[V + 3][1], verts[1][3][1].item<double>(), 1e-6);
  // The second part's faces index its own vertices (1-based).
  EXPECT_EQ(fs_[grid.num_faces()][0], grid.faces[0][0].item<long>() + V + 1);
  EXPECT_FALSE(fs::exists(dir / ("parts.obj.tmp." + std::to_string(::getpid()))));
}

TEST(MeshIo, BadInputsNameTheFile) {
  const auto dir = testing::temp_dir("bad");
  const auto grid = core::make_surface_grid(4, 6);
  const auto bad_faces = at::tensor({0L, 1L, 999L}).view({1, 3});
  try {
    write_obj(dir / "x.obj", at::zeros({grid.num_vertices(), 3}), bad_faces);
    FAIL();
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("x.obj"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("out of range"), std::string::npos);
  }
  EXPECT_FALSE(fs::exists(dir / "x.obj"));
  // A folder where the file should go: the error names the path.
  fs::create_directories(dir / "taken.obj");
  EXPECT_THROW(write_file_atomic(dir / "taken.obj", "data"), std::runtime_error);
}

TEST(MeshIo, AtomicWriteReplacesWholeFile) {
  const auto dir = testing::temp_dir("atomic");
  write_file_atomic(dir / "a" / "b.txt", "first version, longer");
  write_file_atomic(dir / "a" / "b.txt", "second");
  std::ifstream in(dir / "a" / "b.txt");
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(s, "second");
}

}  // namespace
}  // namespace lepard::io
