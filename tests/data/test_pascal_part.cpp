// The Pascal-Part reader on annotations written by the real scipy.io.savemat
// (fixtures/make_pascal_part.py): several objects with the rider first, the real part
// names (lfho, rbuleg, lhorn, a person's hair), derived keypoints and part maps against
// values computed by hand from the fixture's rectangles, and the bad-input errors.
#include <lepard/data/mat_check.h>
#include <lepard/data/readers.h>
#include <lepard/io/atomic_file.h>
#include <lepard/io/image_io.h>

#include "test_support.h"

#include <ATen/ops/full.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>

namespace lepard::data {
namespace {

namespace fs = std::filesystem;

class PascalPart : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = testing::temp_dir("pascal_part");
    const std::string cmd =
        std::string(LEPARD_PYTHON) + " " + LEPARD_FIXTURES_DIR + "/make_pascal_part.py " + root_.string();
    ASSERT_EQ(std::system(cmd.c_str()), 0) << "fixture generation failed: " << cmd;
    // The images (80 x 60). OpenCV reads by content, so PNG data under .jpg names is fine.
    for (const char* id : {"2008_000001", "2008_000002", "2008_000003"}) {
      io::write_png(root_ / "JPEGImages" / (std::string(id) + ".jpg"), at::full({60, 80, 3}, 90, at::kByte));
    }
  }
  static fs::path root_;
};
fs::path PascalPart::root_;

TEST_F(PascalPart, MissingAnnoIsAnErrorNamingTheFile) {
  try {
    read_pascal_part(root_, "horse");
    FAIL() << "expected a DataError";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("2008_000003.mat: no variable 'anno'"), std::string::npos) << e.what();
  }
}

TEST_F(PascalPart, PartsAndKeypointsMatchHandComputedValues) {
  ReaderOptions opt;
  opt.skip_bad = true;
  opt.crop_size = 82;  // the crop box is 82 pixels: crop pixels = original pixels shifted
  const auto r = read_pascal_part(root_, "horse", opt);
  ASSERT_EQ(r.samples.size(), 2u);
  ASSERT_EQ(r.skipped.size(), 1u);
  const auto& s = r.samples[0];
  EXPECT_EQ(s.id, "2008_000001");
  // Labelled pixels span columns 8..63 and rows 6..49: box (8, 6, 55, 43) -> side int(82.5) = 82,
  // corner (int(35.5 - 41), int(27.5 - 41)) = (-5, -13).
  EXPECT_EQ(s.crop.size, 82);
  EXPECT_EQ(s.crop.left, -5);
  EXPECT_EQ(s.crop.top, -13);
  auto label = [&](int row, int col) { return s.part_labels[row + 13][col + 5].item<uint8_t>(); };
  EXPECT_EQ(label(25, 30), 3);   // torso
  EXPECT_EQ(label(47, 24), 14);  // lfho -> left front lower leg
  EXPECT_EQ(label(40, 54), 11);  // rbuleg
  EXPECT_EQ(label(8, 12), 2);    // lhorn -> head
  EXPECT_EQ(label(30, 61), 4);   // tail
  EXPECT_EQ(label(2, 35), 0);    // the rider's hair: another object
  EXPECT_EQ(s.mask[25 + 13][30 + 5].item<uint8_t>(), 1);
  EXPECT_EQ(s.mask[2 + 13][35 + 5].item<uint8_t>(), 0);
  const auto k = s.keypoints;
  auto expect_kp = [&](int slot, float x, float y) {
    EXPECT_FLOAT_EQ(k[slot][0].item<float>(), x) << "slot " << slot;
    EXPECT_FLOAT_EQ(k[slot][1].item<float>(), y) << "slot " << slot;
    EXPECT_EQ(k[slot][2].item<float>(), 1.0f) << "slot " << slot;
  };
  expect_kp(0, 15.5f + 5, 12.5f + 13);  // leye: centroid
  expect_kp(4, 8.75f + 5, 19.0f + 13);  // muzzle: halfway between centroid (9.5, 18) and lowest pixel (8, 20)
  expect_kp(8, 22.0f + 5, 44.0f + 13);  // lfuleg: leftmost lowest pixel
  expect_kp(7, 52.0f + 5, 47.0f + 13);  // rbuleg
  EXPECT_EQ(k[5].abs().sum().item<float>(), 0.0f);  // tail: marked invisible, as LASSIE does
  EXPECT_EQ(k.select(1, 2).sum().item<float>(), 4.0f);
  // Image 2: a tail-less horse, no keypoints.
  EXPECT_EQ(r.samples[1].crop.size, 88);
  EXPECT_EQ(r.samples[1].keypoints.select(1, 2).sum().item<float>(), 0.0f);
  EXPECT_NE(r.skipped[0].find("no variable 'anno'"), std::string::npos);
}

TEST_F(PascalPart, TruncatedFilesAndMissingImagesAreErrors) {
  const auto root = testing::temp_dir("pascal_bad");
  fs::create_directories(root / "Annotations_Part");
  fs::copy(root_ / "Annotations_Part" / "2008_000002.mat", root / "Annotations_Part" / "2008_000002.mat");
  std::ifstream in(root_ / "Annotations_Part" / "2008_000001.mat", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  io::write_file_atomic(root / "Annotations_Part" / "cut.mat", bytes.substr(0, bytes.size() / 2));
  io::write_file_atomic(root / "image_sets" / "horse.txt", "cut\n2008_000002\n");
  ReaderOptions opt;
  opt.skip_bad = true;
  const auto r = read_pascal_part(root, "horse", opt);
  EXPECT_TRUE(r.samples.empty());  // 2008_000002.jpg is missing too
  ASSERT_EQ(r.skipped.size(), 2u);
  EXPECT_NE(r.skipped[0].find("cut.mat"), std::string::npos) << r.skipped[0];
  EXPECT_NE(r.skipped[1].find("2008_000002.jpg does not exist"), std::string::npos) << r.skipped[1];
  EXPECT_THROW(read_pascal_part(root, "cow"), DataError);  // no image_sets/cow.txt
  EXPECT_EQ(part_label_from_pascal_name("rbuleg"), 11);
  EXPECT_EQ(part_label_from_pascal_name("lfho"), 14);
  EXPECT_EQ(part_label_from_pascal_name("hair"), 0);
}

}  // namespace
}  // namespace lepard::data

namespace lepard::data {
namespace {

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Expects read_pascal_part on one annotation file with these bytes to skip it with a message
// naming the file and containing `what`; the check runs before libmatio, so it is quick.
void expect_refused(const std::string& name, const std::string& bytes, const std::string& what) {
  const auto root = testing::temp_dir("pascal_" + name);
  io::write_file_atomic(root / "Annotations_Part" / (name + ".mat"), bytes);
  io::write_file_atomic(root / "image_sets" / "horse.txt", name + "\n");
  io::write_png(root / "JPEGImages" / (name + ".jpg"), at::full({60, 80, 3}, 90, at::kByte));
  ReaderOptions opt;
  opt.skip_bad = true;
  const auto start = std::chrono::steady_clock::now();
  const auto r = read_pascal_part(root, "horse", opt);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 5.0);
  EXPECT_TRUE(r.samples.empty());
  ASSERT_EQ(r.skipped.size(), 1u);
  EXPECT_NE(r.skipped[0].find(name + ".mat"), std::string::npos) << r.skipped[0];
  EXPECT_NE(r.skipped[0].find(what), std::string::npos) << r.skipped[0];
}

TEST_F(PascalPart, RepeatedIdsInTheImageListAreReadOnce) {
  const auto root = testing::temp_dir("pascal_repeat");
  fs::copy(root_, root, fs::copy_options::recursive | fs::copy_options::overwrite_existing);
  io::write_file_atomic(root / "image_sets" / "horse.txt", "2008_000002\n2008_000001.jpg\n2008_000002.jpg\n");
  EXPECT_THROW(read_pascal_part(root, "horse"), DataError);
  ReaderOptions opt;
  opt.skip_bad = true;
  const auto r = read_pascal_part(root, "horse", opt);
  ASSERT_EQ(r.samples.size(), 2u);
  ASSERT_EQ(r.skipped.size(), 1u);
  EXPECT_NE(r.skipped[0].find("horse.txt:3: 2008_000002 repeats line 1"), std::string::npos) << r.skipped[0];
}

TEST_F(PascalPart, CompressedAndUncompressedFilesPassTheStructuralCheck) {
  // 2008_000001 is written with do_compression=True, 2008_000002 without.
  EXPECT_NO_THROW(check_mat_v5(root_ / "Annotations_Part" / "2008_000001.mat"));
  EXPECT_NO_THROW(check_mat_v5(root_ / "Annotations_Part" / "2008_000002.mat"));
  EXPECT_NO_THROW(check_mat_v5(root_ / "Annotations_Part" / "2008_000003.mat"));
  const auto compressed = read_bytes(root_ / "Annotations_Part" / "2008_000001.mat");
  ASSERT_GT(compressed.size(), 136u);
  uint32_t type = 0;
  std::memcpy(&type, compressed.data() + 128, 4);
  EXPECT_EQ(type, 15u) << "the fixture is meant to hold a miCOMPRESSED element";
  // A limit below the inflated size refuses it, naming the limit.
  MatCheckLimits small;
  small.max_inflated_bytes = 256;
  try {
    check_mat_v5(root_ / "Annotations_Part" / "2008_000001.mat", small);
    ADD_FAILURE() << "no error";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("inflates to more than 256 bytes"), std::string::npos) << e.what();
  }
}

TEST_F(PascalPart, DeclaredSizesThatTheFileCannotHoldAreRefusedBeforeLibmatio) {
  // Fuzz finding (fuzz_pascal_mat): a compressed element whose stream is corrupt and whose
  // dimensions declare millions of struct elements; libmatio allocated over 2 GB and ran
  // past the fuzzer's 20 s timeout.
  expect_refused("finding", read_bytes(fs::path(LEPARD_FUZZ_FINDINGS_DIR) / "pascal_mat_timeout_libmatio.mat"),
                 "compressed element");
  // An uncompressed file whose 1 x 1 anno struct now says 1 x 100000000: the dims element's
  // data sits at byte 160 (header 128, matrix tag 8, array flags 16, dims tag 8).
  auto bytes = read_bytes(root_ / "Annotations_Part" / "2008_000002.mat");
  int32_t dims[2];
  std::memcpy(dims, bytes.data() + 160, 8);
  ASSERT_EQ(dims[0], 1);
  ASSERT_EQ(dims[1], 1);
  dims[1] = 100000000;
  std::memcpy(bytes.data() + 160, dims, 8);
  expect_refused("huge_struct", bytes, "the dimensions declare 200000000 struct fields");
  // A v7.3 (HDF5) header.
  auto v73 = read_bytes(root_ / "Annotations_Part" / "2008_000002.mat");
  v73[124] = 0x00;
  v73[125] = 0x02;
  expect_refused("v73", v73, "v7.3 (HDF5)");
  // An element whose byte count runs past the end of the file.
  auto cut = read_bytes(root_ / "Annotations_Part" / "2008_000002.mat");
  expect_refused("cut", cut.substr(0, cut.size() - 40), "runs past the end");
}

}  // namespace
}  // namespace lepard::data
