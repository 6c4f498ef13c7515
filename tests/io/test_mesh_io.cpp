// Mesh export (OBJ with materials, binary PLY, binary glTF) and atomic writes. PLY and GLB
// are parsed back here by their specifications (no mesh library is packaged in Debian's Python).
#include <lepard/core/superquadric.h>
#include <lepard/core/surface_grid.h>
#include <lepard/io/atomic_file.h>
#include <lepard/io/mesh_io.h>

#include "test_support.h"

#include <ATen/ops/stack.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>

#include <nlohmann/json.hpp>
#include <unistd.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
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
    if (tag == "v") {
      double x, y, z;
      ss >> x >> y >> z;
      vs.push_back({x, y, z});
    }
    if (tag == "f") {
      long a, b, c;
      ss >> a >> b >> c;
      fs_.push_back({a, b, c});
    }
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

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

template <typename T>
T read_at(const std::string& bytes, size_t offset) {
  T v;
  std::memcpy(&v, bytes.data() + offset, sizeof(T));
  return v;
}

struct TwoParts {
  at::Tensor verts, colors;
  core::SurfaceGrid grid;
};

TwoParts two_parts() {
  TwoParts t;
  t.grid = core::make_surface_grid(3, 5);
  const auto shapes = testing::random_shape({2}, at::kDouble, 4);
  t.verts = core::superquadric_points(shapes.unsqueeze(1), t.grid.trig);  // (2, V, 3)
  t.colors = at::tensor({255, 0, 0, 0, 128, 255}, at::kByte).view({2, 3});
  return t;
}

TEST(MeshIo, ObjWithColoursWritesItsMaterials) {
  const auto dir = testing::temp_dir("objmtl");
  const auto t = two_parts();
  write_obj(dir / "m.obj", t.verts, t.grid.faces, {}, t.colors);
  const auto obj = slurp(dir / "m.obj"), mtl = slurp(dir / "m.mtl");
  EXPECT_EQ(obj.rfind("mtllib m.mtl\n", 0), 0u);
  EXPECT_NE(obj.find("o part_1\nusemtl part_1\n"), std::string::npos);
  EXPECT_NE(mtl.find("newmtl part_0\nKd 1.0000 0.0000 0.0000"), std::string::npos) << mtl;
  EXPECT_NE(mtl.find("newmtl part_1\nKd 0.0000 0.5020 1.0000"), std::string::npos) << mtl;
}

TEST(MeshIo, PlyParsesBackByItsHeader) {
  const auto dir = testing::temp_dir("ply");
  const auto t = two_parts();
  write_ply(dir / "m.ply", t.verts, t.grid.faces, t.colors);
  const auto bytes = slurp(dir / "m.ply");
  const auto end = bytes.find("end_header\n");
  ASSERT_NE(end, std::string::npos);
  const std::string header = bytes.substr(0, end);
  const int64_t V = t.grid.num_vertices(), F = t.grid.num_faces();
  EXPECT_NE(header.find("format binary_little_endian 1.0"), std::string::npos);
  EXPECT_NE(header.find("element vertex " + std::to_string(2 * V)), std::string::npos);
  EXPECT_NE(header.find("element face " + std::to_string(2 * F)), std::string::npos);
  const size_t body = end + 11, stride = 15;  // 3 floats + 3 uchars
  ASSERT_EQ(bytes.size(), body + 2 * V * stride + 2 * F * 13);
  const auto v = t.verts.to(at::kFloat).contiguous();
  for (int64_t i : {int64_t{0}, V + 3}) {
    for (int c = 0; c < 3; ++c)
      EXPECT_EQ(read_at<float>(bytes, body + i * stride + 4 * c), v.view({-1, 3})[i][c].item<float>());
    EXPECT_EQ(static_cast<int>(read_at<uint8_t>(bytes, body + i * stride + 12)), i < V ? 255 : 0);
  }
  // The first face of part 1 is the first face shifted by V.
  const size_t faces = body + 2 * V * stride + F * 13;
  EXPECT_EQ(read_at<uint8_t>(bytes, faces), 3);
  EXPECT_EQ(read_at<int32_t>(bytes, faces + 1), t.grid.faces[0][0].item<int64_t>() + V);
}

TEST(MeshIo, GlbFollowsTheGltfLayout) {
  const auto dir = testing::temp_dir("glb");
  const auto t = two_parts();
  write_glb(dir / "m.glb", t.verts, t.grid.faces, t.colors);
  const auto bytes = slurp(dir / "m.glb");
  ASSERT_GE(bytes.size(), 28u);
  EXPECT_EQ(bytes.substr(0, 4), "glTF");
  EXPECT_EQ(read_at<uint32_t>(bytes, 4), 2u);
  EXPECT_EQ(read_at<uint32_t>(bytes, 8), bytes.size());
  const auto json_len = read_at<uint32_t>(bytes, 12);
  EXPECT_EQ(bytes.substr(16, 4), "JSON");
  EXPECT_EQ(json_len % 4, 0u);
  const auto gltf = nlohmann::json::parse(bytes.substr(20, json_len));
  const size_t bin_at = 20 + json_len;
  EXPECT_EQ(bytes.substr(bin_at + 4, 4), std::string("BIN\0", 4));
  const size_t bin = bin_at + 8;
  EXPECT_EQ(gltf["asset"]["version"], "2.0");
  ASSERT_EQ(gltf["meshes"][0]["primitives"].size(), 2u);
  EXPECT_EQ(gltf["materials"][1]["pbrMetallicRoughness"]["baseColorFactor"][2].get<double>(), 1.0);
  // Part 1's positions: its accessor and view lead to the vertices written.
  const auto& prim = gltf["meshes"][0]["primitives"][1];
  const auto& acc = gltf["accessors"][prim["attributes"]["POSITION"].get<int>()];
  const auto& view = gltf["bufferViews"][acc["bufferView"].get<int>()];
  const int64_t V = t.grid.num_vertices();
  EXPECT_EQ(acc["count"].get<int64_t>(), V);
  const size_t at = bin + view["byteOffset"].get<size_t>() + 12 * 2;  // vertex 2 of part 1
  for (int c = 0; c < 3; ++c) EXPECT_EQ(read_at<float>(bytes, at + 4 * c), t.verts[1][2][c].item<float>());
  // min and max are exactly those of the float32 values stored (validators compare bit for bit).
  for (int c = 0; c < 3; ++c) {
    EXPECT_EQ(acc["min"][c].get<double>(), t.verts[1].select(1, c).to(at::kFloat).min().item<double>());
    EXPECT_EQ(acc["max"][c].get<double>(), t.verts[1].select(1, c).to(at::kFloat).max().item<double>());
  }
  // Indices: the shared face list as uint32.
  const auto& idx = gltf["accessors"][prim["indices"].get<int>()];
  EXPECT_EQ(idx["componentType"], 5125);
  EXPECT_EQ(read_at<uint32_t>(bytes, bin + 4 * 5), static_cast<uint32_t>(t.grid.faces.view({-1})[5].item<int64_t>()));
}

// The Khronos glTF-Validator (npm gltf-validator; scripts/test.sh installs it under
// <build>/tools when npm is there) on a file with awkward float values: 0 errors, 0 warnings.
TEST(MeshIo, GlbPassesTheKhronosValidator) {
  const std::string modules = LEPARD_GLTF_VALIDATOR_DIR;
  if (std::system("node --version > /dev/null 2>&1") != 0 || !fs::exists(fs::path(modules) / "gltf-validator"))
    GTEST_SKIP() << "node or the gltf-validator module (" << modules << ") is missing: scripts/test.sh installs it";
  const auto dir = testing::temp_dir("glb_validator");
  auto t = two_parts();
  t.verts = t.verts.mul(0.7311).add(0.0123);  // values with no short decimal form
  write_glb(dir / "m.glb", t.verts, t.grid.faces, t.colors);
  const std::string cmd = "NODE_PATH=" + modules + " node " + LEPARD_VALIDATE_GLTF + " " + (dir / "m.glb").string() +
                          " > " + (dir / "report.txt").string() + " 2>&1";
  const int rc = std::system(cmd.c_str());
  EXPECT_EQ(rc, 0) << slurp(dir / "report.txt");
  EXPECT_NE(slurp(dir / "report.txt").find("0 errors, 0 warnings"), std::string::npos) << slurp(dir / "report.txt");
}

}  // namespace
}  // namespace lepard::io
