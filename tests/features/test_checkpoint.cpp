// Checkpoint reading on files written by the real torch.save (Debian's python3-torch):
// every tensor equals what numpy wrote for it, and each bad file gets its error.
#include <lepard/io/checkpoint.h>
#include <lepard/io/atomic_file.h>
#include <lepard/io/npy.h>

#include "test_support.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <map>
#include <string>

namespace lepard::io {
namespace {

namespace fs = std::filesystem;

class Checkpoint : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = testing::temp_dir("checkpoints");
    const std::string cmd =
        std::string(LEPARD_PYTHON) + " " + LEPARD_FIXTURES_DIR + "/make_checkpoints.py " + dir_.string();
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  static void expect_matches_numpy(const StateDict& sd, const std::string& prefix_filter = "") {
    for (const auto& [key, tensor] : sd) {
      if (!prefix_filter.empty() && key.rfind(prefix_filter, 0) != 0) continue;
      const auto expected = io::read_npy(dir_ / "expected" / (key + ".npy"));
      ASSERT_EQ(tensor.sizes(), expected.sizes()) << key;
      EXPECT_TRUE(tensor.to(expected.scalar_type()).equal(expected)) << key;
    }
  }
  static std::string error_of(const fs::path& p) {
    try {
      load_torch_checkpoint(p);
    } catch (const CheckpointError& e) {
      return e.what();
    }
    return "no error";
  }
  static fs::path dir_;
};
fs::path Checkpoint::dir_;

TEST_F(Checkpoint, ReadsAStateDictOrderedDictOfParameters) {
  const auto sd = load_torch_checkpoint(dir_ / "state_dict.pth");
  ASSERT_EQ(sd.size(), 9u);            // 2 + 2 + 5 (BatchNorm's buffers included)
  EXPECT_EQ(sd[0].first, "0.weight");  // the OrderedDict's order is kept
  EXPECT_EQ(sd[8].first, "2.num_batches_tracked");
  EXPECT_EQ(sd[8].second.scalar_type(), at::kLong);
  expect_matches_numpy(sd);
}

TEST_F(Checkpoint, ReadsViewsSharedStoragesAndDtypes) {
  const auto sd = load_torch_checkpoint(dir_ / "views.pth");
  std::map<std::string, at::Tensor> m(sd.begin(), sd.end());
  ASSERT_EQ(m.size(), 8u);
  EXPECT_EQ(m["float16"].scalar_type(), at::kHalf);
  EXPECT_EQ(m["bool"].scalar_type(), at::kBool);
  EXPECT_EQ(m["sliced"].sizes(), (at::IntArrayRef{3, 3}));
  expect_matches_numpy(sd);
}

TEST_F(Checkpoint, FlattensFullCheckpointsAndSkipsNonTensors) {
  const auto sd = load_torch_checkpoint(dir_ / "full.pth");
  int teacher = 0, student = 0;
  for (const auto& [k, v] : sd) {
    teacher += k.rfind("teacher.backbone.", 0) == 0;
    student += k.rfind("student.module.backbone.", 0) == 0;
    EXPECT_EQ(k.find("epoch"), std::string::npos);
    EXPECT_EQ(k.find("args"), std::string::npos);
  }
  EXPECT_EQ(teacher, 8);
  EXPECT_EQ(student, 8);
  expect_matches_numpy(sd, "teacher.");
}

TEST_F(Checkpoint, BadFilesGetTheirErrors) {
  EXPECT_NE(error_of(dir_ / "legacy.pth").find("legacy (non-zip) torch.save file"), std::string::npos);
  EXPECT_NE(error_of(dir_ / "legacy.pth").find("torch.save(torch.load("), std::string::npos);
  std::ifstream in(dir_ / "state_dict.pth", std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  io::write_file_atomic(dir_ / "cut.pth", bytes.substr(0, bytes.size() * 2 / 3));
  EXPECT_NE(error_of(dir_ / "cut.pth").find("truncated"), std::string::npos) << error_of(dir_ / "cut.pth");
  io::write_file_atomic(dir_ / "text.pth", "hello");
  EXPECT_NE(error_of(dir_ / "text.pth").find("not a torch.save zip archive"), std::string::npos);
  EXPECT_NE(error_of(dir_ / "missing.pth").find("cannot open"), std::string::npos);
  EXPECT_NE(error_of(dir_).find("is a folder, not a file"), std::string::npos) << error_of(dir_);
  // One byte flipped inside a tensor's storage: the entry's CRC-32 no longer matches.
  std::string flipped = bytes;
  const auto storage = flipped.find("data/0");
  ASSERT_NE(storage, std::string::npos);
  flipped[storage + 64] = static_cast<char>(flipped[storage + 64] ^ 0x10);
  io::write_file_atomic(dir_ / "flipped.pth", flipped);
  EXPECT_NE(error_of(dir_ / "flipped.pth").find("is corrupt (CRC-32"), std::string::npos)
      << error_of(dir_ / "flipped.pth");
  EXPECT_NO_THROW(verify_zip(dir_ / "state_dict.pth"));
  // Fuzz finding (fuzz_torch_checkpoint): a central-directory entry whose local-header offset
  // is near 2^32 wrapped the bounds check (32-bit sum) and read far outside the file.
  std::string wrapped = bytes;
  const auto central = wrapped.find(std::string("PK\x01\x02", 4));
  ASSERT_NE(central, std::string::npos);
  for (int i = 0; i < 4; ++i) wrapped[central + 42 + i] = static_cast<char>(i == 0 ? 0xF0 : 0xFF);
  io::write_file_atomic(dir_ / "wrapped.pth", wrapped);
  EXPECT_NE(error_of(dir_ / "wrapped.pth").find("has no local header"), std::string::npos)
      << error_of(dir_ / "wrapped.pth");
}

TEST_F(Checkpoint, SafetensorsLoadToTheSameNumbers) {
  const auto st = load_state_dict(dir_ / "state_dict.safetensors");
  const auto pt = load_state_dict(dir_ / "state_dict.pth");
  ASSERT_EQ(st.size(), pt.size());
  for (size_t i = 0; i < st.size(); ++i) {
    EXPECT_EQ(st[i].first, pt[i].first);
    EXPECT_TRUE(st[i].second.equal(pt[i].second)) << st[i].first;
  }
  // A truncated file names the tensor and its offsets.
  std::ifstream in(dir_ / "state_dict.safetensors", std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  io::write_file_atomic(dir_ / "cut.safetensors", bytes.substr(0, bytes.size() - 10));
  std::string message;
  try {
    load_safetensors(dir_ / "cut.safetensors");
  } catch (const CheckpointError& e) {
    message = e.what();
  }
  EXPECT_NE(message.find("truncated: tensor '2.num_batches_tracked' needs data bytes"), std::string::npos) << message;
  io::write_file_atomic(dir_ / "bad.safetensors", std::string("\x05\0\0\0\0\0\0\0{oops"));
  EXPECT_THROW(load_safetensors(dir_ / "bad.safetensors"), CheckpointError);
}

}  // namespace
}  // namespace lepard::io
