// The LASSIE web-image reader on a Label-Studio style CSV (quoted JSON with doubled quotes,
// CRLF line ends, as Python's csv module writes them), bad inputs with and without
// skipping, and the image-folder reader.
#include <lepard/data/layout.h>
#include <lepard/data/readers.h>
#include <lepard/io/atomic_file.h>
#include <lepard/io/image_io.h>

#include "test_support.h"

#include <ATen/ops/full.h>
#include <ATen/ops/zeros.h>
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <string>

namespace lepard::data {
namespace {

namespace fs = std::filesystem;

// A CSV field as Python's csv module quotes it.
std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string kp(const char* label, double x, double y) {
  return "{\"x\": " + std::to_string(x) + ", \"y\": " + std::to_string(y) +
         ", \"width\": 0.5, \"keypointlabels\": [\"" + label + "\"], \"original_width\": 200}";
}

// root/images/zebra/input_{1,2,3}.png and root/annotations/zebra.csv.
fs::path lassie_fixture(const std::string& name, const std::string& extra_rows = "") {
  const auto root = testing::temp_dir(name);
  for (int id : {1, 2, 3}) {
    io::write_png(root / "images" / "zebra" / ("input_" + std::to_string(id) + ".png"),
                  at::full({100, 200, 3}, 40 * id, at::kByte));
  }
  const std::string kps1 = "[" + kp("Left eye", 10, 20) + ", " + kp("Front right upper leg (knee)", 50, 80) + ", " +
                           kp("Tail top", 90, 50) + "]";
  const std::string kps2 =
      "[" + kp("Muzzle (tip of nose)", 25, 25) + ", " + kp("Back left lower leg (ankle)", 75, 75) + "]";
  std::string csv = "id,img_url,kps\r\n";
  csv += "1,https://example.org/a.jpg," + quoted(kps1) + "\r\n";
  csv += "2,https://example.org/b.jpg," + quoted(kps2) + "\r\n";
  csv += "3,https://example.org/c.jpg,\r\n";  // no keypoints: the whole image
  csv += extra_rows;
  io::write_file_atomic(root / "annotations" / "zebra.csv", csv);
  return root;
}

TEST(LassieReader, KeypointsAndCropsMatchHandComputedValues) {
  ReaderOptions opt;
  opt.crop_size = 120;
  const auto r = read_lassie_web_images(lassie_fixture("lassie_ok"), "zebra", opt);
  ASSERT_EQ(r.samples.size(), 3u);
  EXPECT_TRUE(r.skipped.empty());
  const auto& s = r.samples[0];
  EXPECT_EQ(s.id, "zebra/1");
  EXPECT_EQ(s.original_width, 200);
  EXPECT_EQ(s.original_height, 100);
  // Keypoints (20, 20), (100, 80), (180, 50): box (20, 20, 160, 60) -> square 240 at (-20, -70).
  EXPECT_EQ(s.crop.left, -20);
  EXPECT_EQ(s.crop.top, -70);
  EXPECT_EQ(s.crop.size, 240);
  // Crop pixels at 120 / 240 = 0.5: leye (20, 45), rfuleg (slot 6) (60, 75), tail (slot 5) (100, 60).
  const auto k = s.keypoints;
  ASSERT_EQ(k.sizes(), (at::IntArrayRef{14, 3}));
  EXPECT_FLOAT_EQ(k[0][0].item<float>(), 20.0f);
  EXPECT_FLOAT_EQ(k[0][1].item<float>(), 45.0f);
  EXPECT_FLOAT_EQ(k[6][0].item<float>(), 60.0f);
  EXPECT_FLOAT_EQ(k[6][1].item<float>(), 75.0f);
  EXPECT_FLOAT_EQ(k[5][0].item<float>(), 100.0f);
  EXPECT_FLOAT_EQ(k[5][1].item<float>(), 60.0f);
  EXPECT_EQ(k.select(1, 2).sum().item<float>(), 3.0f);
  // The crop: zero padding above the image (rows -70..-1 of the original map to crop rows 0..34).
  EXPECT_EQ(s.image.sizes(), (at::IntArrayRef{120, 120, 3}));
  EXPECT_EQ(s.image[10][60][0].item<int>(), 0);
  EXPECT_EQ(s.image[60][60][0].item<int>(), 40);
  // Image 3 has no keypoints: the crop is the whole image's 1.5x square, all invisible.
  EXPECT_EQ(r.samples[2].crop.size, 300);
  EXPECT_EQ(r.samples[2].keypoints.abs().sum().item<float>(), 0.0f);
}

TEST(LassieReader, BadInputsNameTheFileAndSkippingKeepsTheRest) {
  const auto root = lassie_fixture("lassie_bad", "4,u,\"[{\"\"x\"\": 10, \"\"y\"\": }]\"\r\n5,u,\r\n");
  // Image 5 is missing, image 2 truncated.
  const auto png = root / "images" / "zebra" / "input_2.png";
  std::ifstream in(png, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  io::write_file_atomic(png, bytes.substr(0, bytes.size() / 3));
  try {
    read_lassie_web_images(root, "zebra");
    FAIL() << "expected a DataError";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("input_2.png"), std::string::npos) << e.what();
  }
  ReaderOptions skip;
  skip.skip_bad = true;
  const auto r = read_lassie_web_images(root, "zebra", skip);
  ASSERT_EQ(r.samples.size(), 2u);  // 1 and 3
  EXPECT_EQ(r.samples[0].id, "zebra/1");
  EXPECT_EQ(r.samples[1].id, "zebra/3");
  ASSERT_EQ(r.skipped.size(), 3u);
  EXPECT_NE(r.skipped[0].find("input_2.png"), std::string::npos) << r.skipped[0];
  EXPECT_NE(r.skipped[1].find("zebra.csv:5 (id 4): kps is not valid JSON"), std::string::npos) << r.skipped[1];
  EXPECT_NE(r.skipped[2].find("input_5.png does not exist"), std::string::npos) << r.skipped[2];
}

TEST(LassieReader, RepeatedIdsAreReadOnceAndCounted) {
  // Row 5 repeats id 2 (with other keypoints): without --skip-bad an error naming the row,
  // with it a skip that the summary counts; id 2 is read once, from its first row.
  const auto root = lassie_fixture("lassie_repeat", "2,u," + quoted("[" + kp("Left eye", 50, 50) + "]") + "\r\n");
  try {
    read_lassie_web_images(root, "zebra");
    FAIL() << "expected a DataError";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("zebra.csv:5 (id 2): the id repeats line 3"), std::string::npos) << e.what();
  }
  ReaderOptions skip;
  skip.skip_bad = true;
  const auto r = read_lassie_web_images(root, "zebra", skip);
  ASSERT_EQ(r.samples.size(), 3u);
  EXPECT_EQ(r.samples[1].id, "zebra/2");
  EXPECT_EQ(r.samples[1].keypoints.select(1, 2).sum().item<float>(), 2.0f);  // the first row's two keypoints
  ASSERT_EQ(r.skipped.size(), 1u);
}

TEST(LassieReader, UnknownLabelsAndMissingFilesAreErrors) {
  const auto root = lassie_fixture("lassie_label", "6,u," + quoted("[" + kp("Left wing", 10, 10) + "]") + "\r\n");
  try {
    read_lassie_web_images(root, "zebra");
    FAIL();
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("unknown keypoint label 'Left wing'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(read_lassie_web_images(root, "giraffe"), DataError);  // no annotations/giraffe.csv
}

TEST(LassieReader, OneVisibleKeypointCropsByTheMaskOrNamesTheRow) {
  // Image 7 has a single visible keypoint (its box has no area), as a penguin seen from the
  // side may have. With a ground-truth mask the crop surrounds the mask; without, the row is
  // an error that names it and offers --skip-bad.
  const auto root = lassie_fixture("lassie_one_kp", "7,u," + quoted("[" + kp("Left eye", 30, 40) + "]") + "\r\n");
  io::write_png(root / "images" / "zebra" / "input_7.png", at::full({100, 200, 3}, 90, at::kByte));
  try {
    read_lassie_web_images(root, "zebra");
    FAIL() << "expected a DataError";
  } catch (const DataError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("zebra.csv:5 (id 7): the visible keypoints span no area"), std::string::npos) << msg;
    EXPECT_NE(msg.find("--skip-bad"), std::string::npos) << msg;
  }
  auto mask = at::zeros({100, 200, 3}, at::kByte);
  mask.narrow(0, 20, 40).narrow(1, 50, 80).fill_(255);  // rows 20..59, columns 50..129
  io::write_png(root / "gt" / "zebra" / "mask_7.png", mask);
  const auto r = read_lassie_web_images(root, "zebra");
  ASSERT_EQ(r.samples.size(), 4u);
  EXPECT_EQ(r.mask_box_crops, 1);
  const auto& s = r.samples[3];
  EXPECT_EQ(s.id, "zebra/7");
  // Box (50, 20, 80, 40) -> square of 1.5 x 80 = 120 centred on (90, 40): (30, -20).
  EXPECT_EQ(s.crop.size, 120);
  EXPECT_EQ(s.crop.left, 30);
  EXPECT_EQ(s.crop.top, -20);
  ASSERT_TRUE(s.mask.defined());
  EXPECT_GT(s.mask.sum().item<int64_t>(), 0);
}

TEST(LassieReader, SplitsPartitionTheSamples) {
  const auto root = lassie_fixture("lassie_split");
  ReaderOptions train, test;
  train.split = Split::Train;
  test.split = Split::Test;
  train.test_fraction = test.test_fraction = 0.5;
  const auto a = read_lassie_web_images(root, "zebra", train).samples.size();
  const auto b = read_lassie_web_images(root, "zebra", test).samples.size();
  EXPECT_EQ(a + b, 3u);
}

TEST(Layout, DetectsListsAndReadsEachLayout) {
  // LASSIE: annotations/ with one CSV per category (a stray file is not a category).
  const auto lassie = lassie_fixture("layout_lassie");
  io::write_file_atomic(lassie / "annotations" / "notes.txt", "not a category\n");
  io::write_file_atomic(lassie / "annotations" / "ant.csv", "id,img_url\r\n");
  EXPECT_EQ(resolve_layout(lassie, "auto", "--format"), Layout::Lassie);
  EXPECT_EQ(list_categories(lassie, Layout::Lassie), (std::vector<std::string>{"ant", "zebra"}));
  const auto zebras = read_category(lassie, Layout::Lassie, "zebra");
  EXPECT_EQ(zebras.samples.size(), 3u);
  EXPECT_EQ(zebras.samples[0].id, "zebra/1");

  // Pascal-Part: Annotations_Part/ and image_sets/; read_category reaches its reader (the
  // listed id's .mat is missing, and the error names where Pascal-Part keeps it).
  const auto pascal = testing::temp_dir("layout_pascal");
  fs::create_directories(pascal / "Annotations_Part");
  io::write_file_atomic(pascal / "image_sets" / "horse.txt", "2008_000001\n");
  io::write_file_atomic(pascal / "image_sets" / "cow.txt", "");
  EXPECT_EQ(resolve_layout(pascal, "auto", "data.format"), Layout::Pascal);
  EXPECT_EQ(resolve_layout(pascal, "lassie", "data.format"), Layout::Lassie);  // an explicit choice wins
  EXPECT_EQ(list_categories(pascal, Layout::Pascal), (std::vector<std::string>{"cow", "horse"}));
  testing::expect_error<DataError>([&] { read_category(pascal, Layout::Pascal, "horse"); },
                                   "Annotations_Part/2008_000001.mat");

  // Neither layout, an unknown format, a missing category folder: errors naming the setting.
  const auto neither = testing::temp_dir("layout_neither");
  testing::expect_error<std::invalid_argument>([&] { resolve_layout(neither, "auto", "--format"); },
                                               "set --format to lassie or pascal");
  testing::expect_error<std::invalid_argument>([&] { resolve_layout(lassie, "coco", "data.format"); },
                                               "data.format: unknown dataset format 'coco'");
  testing::expect_error<DataError>([&] { list_categories(neither, Layout::Pascal); }, "image_sets");
}

TEST(ImageFolder, ReadsImagesSortedWithCentredSquareCrops) {
  const auto dir = testing::temp_dir("folder");
  io::write_png(dir / "b.png", at::full({40, 80, 3}, 200, at::kByte));
  io::write_png(dir / "a.PNG", at::full({30, 30, 3}, 100, at::kByte));
  io::write_file_atomic(dir / "notes.txt", "not an image");
  io::write_file_atomic(dir / "broken.jpg", "not a jpeg either");
  EXPECT_THROW(read_image_folder(dir), DataError);
  ReaderOptions opt;
  opt.skip_bad = true;
  opt.crop_size = 64;
  const auto r = read_image_folder(dir, opt);
  ASSERT_EQ(r.samples.size(), 2u);
  EXPECT_EQ(r.skipped.size(), 1u);
  EXPECT_EQ(r.samples[0].id, "a.PNG");
  // 80 x 40 -> the centred 80 x 80 square: 20 rows of padding above and below.
  const auto& s = r.samples[1];
  EXPECT_EQ(s.crop.size, 80);
  EXPECT_EQ(s.crop.top, -20);
  EXPECT_EQ(s.image[2][32][0].item<int>(), 0);
  EXPECT_EQ(s.image[32][32][0].item<int>(), 200);
  EXPECT_FALSE(s.keypoints.defined());
  EXPECT_THROW(read_image_folder(dir / "missing"), DataError);
}

}  // namespace
}  // namespace lepard::data
