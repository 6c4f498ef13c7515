// The training configuration: a file and --set overrides load into typed fields; unknown
// keys, wrong types, bad values and missing folders fail naming the key and the file.
#include <lepard/io/atomic_file.h>
#include <lepard/train/config.h>

#include "test_support.h"

#include <gtest/gtest.h>

namespace lepard::train {
namespace {

namespace fs = std::filesystem;

std::string error_of(const fs::path& path, const std::vector<std::string>& overrides = {}) {
  try {
    load_train_config(path, overrides);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "no error";
}

class Config : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::temp_dir("config");
    fs::create_directories(dir_ / "data");
  }
  fs::path write(const std::string& name, const std::string& text) {
    io::write_file_atomic(dir_ / name, text);
    return dir_ / name;
  }
  std::string data() const { return (dir_ / "data").string(); }
  fs::path dir_;
};

TEST_F(Config, LoadsTypedValuesAndOverrides) {
  const auto path = write("a.yaml", "data:\n  root: " + data() +
                                        "\n  crop_size: 128\nmodel:\n  local_deformation: false\n"
                                        "train:\n  lr: 3.0e-4\n  schedule: step\n");
  const auto c = load_train_config(path, {"train.steps=50", "loss.collisions=false", "train.lr=1e-2"});
  EXPECT_EQ(c.data.root, data());
  EXPECT_EQ(c.data.crop_size, 128);
  EXPECT_FALSE(c.model.local_deformation);
  EXPECT_EQ(c.train.schedule, TrainConfig::Train::Schedule::Step);
  EXPECT_EQ(c.train.steps, 50);
  EXPECT_FALSE(c.loss.collisions);
  EXPECT_DOUBLE_EQ(c.train.lr, 1e-2);  // --set wins over the file
  EXPECT_EQ(c.model.parts, 16);        // untouched keys keep their defaults
  // What to_yaml writes reads back to the same values.
  TrainConfig copy;
  auto schema = copy.schema();
  auto original = c;
  schema.load_string(original.schema().to_yaml(), "dump");
  EXPECT_EQ(copy.schema().to_yaml(), original.schema().to_yaml());
  EXPECT_DOUBLE_EQ(copy.train.lr, 1e-2);
}

TEST_F(Config, DumpsNumbersShortAndExact) {
  // Decimals that have no exact binary form print as typed, and read back to the same bits.
  auto c = load_train_config(write("n.yaml", "data:\n  root: " + data() + "\n  test_fraction: 0.1667\n"),
                             {"train.lr=0.0003", "train.sigma_end=0.1234567890123456789"});
  const auto yaml = c.schema().to_yaml();
  EXPECT_NE(yaml.find("test_fraction: 0.1667\n"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("lr: 0.0003\n"), std::string::npos) << yaml;
  TrainConfig copy;
  copy.schema().load_string(yaml, "dump");
  EXPECT_EQ(copy.data.test_fraction, c.data.test_fraction);
  EXPECT_EQ(copy.train.lr, c.train.lr);
  EXPECT_EQ(copy.train.sigma_end, c.train.sigma_end);  // needs 17 digits: still exact
}

TEST_F(Config, BadConfigsNameTheKeyAndTheFile) {
  const auto root = "data:\n  root: " + data() + "\n";
  const auto unknown = write("unknown.yaml", root + "train:\n  learning_rate: 0.1\n");
  EXPECT_NE(error_of(unknown).find("unknown.yaml:4: unknown key 'train.learning_rate' (known keys in 'train': 'steps'"),
            std::string::npos)
      << error_of(unknown);
  const auto section = write("section.yaml", root + "optimiser:\n  lr: 0.1\n");
  EXPECT_NE(error_of(section).find(
                "section.yaml:3: unknown key 'optimiser' (known sections: 'data', 'model', 'loss', 'train')"),
            std::string::npos)
      << error_of(section);
  const auto type = write("type.yaml", root + "train:\n  steps: many\n");
  EXPECT_NE(error_of(type).find("type.yaml:4: key 'train.steps' expects an integer, got 'many'"), std::string::npos)
      << error_of(type);
  const auto fraction = write("fraction.yaml", root + "train:\n  batch_size: 1.5\n");
  EXPECT_NE(error_of(fraction).find("key 'train.batch_size' expects an integer, got '1.5'"), std::string::npos);
  const auto list = write("list.yaml", root + "train:\n  lr: [1, 2]\n");
  EXPECT_NE(error_of(list).find("key 'train.lr' expects a number value, not a list or mapping"), std::string::npos)
      << error_of(list);
  const auto flag = write("flag.yaml", root + "loss:\n  collisions: maybe\n");
  EXPECT_NE(error_of(flag).find("key 'loss.collisions' expects true or false"), std::string::npos);
  const auto choice = write("choice.yaml", root + "train:\n  schedule: linear\n");
  // A choice is parsed into its enum when read: the error names the file and line.
  EXPECT_NE(
      error_of(choice).find("choice.yaml:4: key 'train.schedule' must be one of constant, cosine, step, got 'linear'"),
      std::string::npos)
      << error_of(choice);
  const auto norm = write("norm.yaml", root + "model:\n  norm: batch\n");
  EXPECT_NE(error_of(norm).find("key 'model.norm' must be one of group, frozen_batch, got 'batch'"), std::string::npos)
      << error_of(norm);
  const auto missing = write("missing.yaml", "data:\n  root: " + (dir_ / "nowhere").string() + "\n");
  EXPECT_NE(error_of(missing).find("missing.yaml: key 'data.root' names " + (dir_ / "nowhere").string() +
                                   ", which is not a folder"),
            std::string::npos)
      << error_of(missing);
  const auto broken = write("broken.yaml", "data: [\n");
  EXPECT_NE(error_of(broken).find("broken.yaml:"), std::string::npos);
  EXPECT_NE(error_of(broken).find("not valid YAML"), std::string::npos);
  EXPECT_NE(error_of(dir_ / "none.yaml").find("none.yaml: cannot open"), std::string::npos);
  const auto good = write("good.yaml", root);
  EXPECT_NE(error_of(good, {"train.stepz=3"}).find("--set train.stepz=3: unknown key 'train.stepz'"),
            std::string::npos);
  EXPECT_NE(error_of(good, {"train.steps"}).find("expected key=value"), std::string::npos);
  EXPECT_NE(error_of(good, {"train.steps=0"}).find("key 'train.steps' must be at least 1, got 0"), std::string::npos);
  // The ownership's and the shape bound's settings.
  EXPECT_NE(error_of(good, {"loss.ownership_table=t.txt"}).find("loss.ownership_table"), std::string::npos)
      << error_of(good, {"loss.ownership_table=t.txt"});
  EXPECT_NE(error_of(good, {"loss.ownership_capacity=-1"}).find("loss.ownership_capacity"), std::string::npos);
  EXPECT_NE(error_of(good, {"loss.part_containment=-0.5"}).find("loss.part_containment"), std::string::npos);
  EXPECT_NE(error_of(good, {"model.max_exponent=2.5"}).find("model.max_exponent"), std::string::npos);
  EXPECT_NE(error_of(good, {"model.max_size=0.2"}).find("model.max_size"), std::string::npos);
  EXPECT_NE(error_of(good, {"model.min_aspect=0.3"}).find("model.min_aspect"), std::string::npos);
  EXPECT_NE(error_of(good, {"model.min_aspect=0"}).find("model.min_aspect"), std::string::npos);
  EXPECT_NE(error_of(good, {"loss.split_min_fraction=0"}).find("loss.split_min_fraction"), std::string::npos);
  EXPECT_NE(error_of(good, {"loss.split_shared=true"}).find("loss.split_shared"), std::string::npos)
      << error_of(good, {"loss.split_shared=true"});
  // The viewpoint search's settings.
  EXPECT_NE(error_of(good, {"loss.viewpoint=1"}).find("key 'loss.viewpoint' needs model.viewpoints > 1"),
            std::string::npos)
      << error_of(good, {"loss.viewpoint=1"});
  EXPECT_NE(error_of(good, {"model.viewpoints=2"}).find("key 'model.viewpoints' needs loss.viewpoint > 0"),
            std::string::npos);
  EXPECT_NE(error_of(good, {"model.viewpoints=2", "loss.viewpoint=1"}).find("needs loss.ownership"), std::string::npos);
  EXPECT_NE(error_of(good, {"model.viewpoints=0"}).find("model.viewpoints"), std::string::npos);
  EXPECT_NE(error_of(good, {"loss.viewpoint=-1"}).find("loss.viewpoint"), std::string::npos);
  EXPECT_NE(error_of(good, {"loss.viewpoint_from=1"}).find("loss.viewpoint_from"), std::string::npos);
  EXPECT_NE(error_of(good, {"loss.viewpoint_keep=0"}).find("loss.viewpoint_keep"), std::string::npos);
  EXPECT_NE(error_of(good, {"loss.viewpoint_momentum=1"}).find("loss.viewpoint_momentum"), std::string::npos);
  EXPECT_NE(error_of(good, {"loss.layout=1"}).find("key 'loss.layout' needs model.viewpoints > 1"), std::string::npos)
      << error_of(good, {"loss.layout=1"});
  EXPECT_NE(error_of(good, {"loss.layout=-1"}).find("loss.layout"), std::string::npos);
  EXPECT_NE(error_of(good, {"loss.shape_consistency=-1"}).find("loss.shape_consistency"), std::string::npos);
  EXPECT_NE(error_of(good, {"loss.distance_consistency=-0.1"}).find("loss.distance_consistency"), std::string::npos);
  EXPECT_NE(error_of(good, {"loss.part_pull=-0.5"}).find("loss.part_pull"), std::string::npos);
  EXPECT_NE(error_of(good, {"loss.part_coverage_balance=1.5"}).find("loss.part_coverage_balance"), std::string::npos);
  EXPECT_NE(error_of(good, {"loss.parts_balance=-0.5"}).find("loss.parts_balance"), std::string::npos);
  EXPECT_NE(error_of(good, {"loss.part_normalize=true", "loss.part_coverage_balance=0.5"}).find("part_normalize"),
            std::string::npos);
  // The rim's settings.
  EXPECT_NE(error_of(good, {"loss.rim_share=1.5"}).find("key 'loss.rim_share'"), std::string::npos);
  EXPECT_NE(error_of(good, {"loss.rim_share=0.9"}).find("needs loss.ownership"), std::string::npos)
      << error_of(good, {"loss.rim_share=0.9"});
  EXPECT_NE(error_of(good, {"loss.rim_target=-0.5"}).find("key 'loss.rim_target'"), std::string::npos);
  EXPECT_NE(error_of(good, {"loss.rim_target=2"}).find("key 'loss.rim_target'"), std::string::npos);
  // Feedback passes.
  EXPECT_NE(error_of(good, {"model.feedback=-1"}).find("key 'model.feedback'"), std::string::npos);
  EXPECT_NE(error_of(good, {"model.feedback=1", "model.viewpoints=2", "loss.viewpoint=1"})
                .find("key 'model.feedback' needs model.viewpoints 1"),
            std::string::npos)
      << error_of(good, {"model.feedback=1", "model.viewpoints=2", "loss.viewpoint=1"});
  // Spatial soft-argmax keypoints: a count of at least 0 on a stage the encoder has.
  EXPECT_NE(error_of(good, {"model.keypoints=-1"}).find("key 'model.keypoints'"), std::string::npos);
  EXPECT_NE(error_of(good, {"model.keypoints=8", "model.keypoint_stage=5"}).find("key 'model.keypoint_stage'"),
            std::string::npos);
  EXPECT_NE(error_of(good, {"model.keypoints=8", "model.keypoint_stage=0"}).find("key 'model.keypoint_stage'"),
            std::string::npos);
  EXPECT_EQ(error_of(good, {"model.keypoints=8", "model.keypoint_stage=4"}), "no error");
  // The labels' moments need the labels.
  EXPECT_NE(error_of(good, {"model.label_moments=true"}).find("key 'model.label_moments' needs model.label_input"),
            std::string::npos)
      << error_of(good, {"model.label_moments=true"});
  EXPECT_EQ(error_of(good, {"model.label_moments=true", "model.label_input=true"}), "no error");
  // Parts in the camera frame: the camera's turns would move nothing in the image.
  EXPECT_NE(error_of(good, {"model.part_frame=camera", "model.viewpoints=2", "loss.viewpoint=1"})
                .find("key 'model.part_frame' camera needs model.viewpoints 1"),
            std::string::npos)
      << error_of(good, {"model.part_frame=camera", "model.viewpoints=2", "loss.viewpoint=1"});
  EXPECT_EQ(error_of(good, {"model.part_frame=camera"}), "no error");
  EXPECT_NE(error_of(good, {"model.part_frame=world"}).find("key 'model.part_frame' must be one of"),
            std::string::npos);
  // Anchored centres read the labels and follow the ownership.
  EXPECT_NE(
      error_of(good, {"model.anchor=true", "loss.ownership=true"}).find("key 'model.anchor' needs model.label_input"),
      std::string::npos)
      << error_of(good, {"model.anchor=true", "loss.ownership=true"});
  EXPECT_NE(error_of(good, {"model.anchor=true", "model.label_input=true", "loss.ownership=false"})
                .find("needs loss.ownership"),
            std::string::npos)
      << error_of(good, {"model.anchor=true", "model.label_input=true", "loss.ownership=false"});
  EXPECT_EQ(error_of(good, {"model.anchor=true", "model.label_input=true", "loss.ownership=true"}), "no error");
  for (const std::string reach : {"0", "1.5"})
    EXPECT_NE(error_of(good, {"model.anchor_reach=" + reach}).find("key 'model.anchor_reach'"), std::string::npos);
  // Part heatmaps move the object frame's centres, so they refuse the other placements.
  EXPECT_NE(error_of(good, {"model.part_heatmaps=true", "model.part_frame=camera"})
                .find("key 'model.part_heatmaps' needs model.part_frame object"),
            std::string::npos)
      << error_of(good, {"model.part_heatmaps=true", "model.part_frame=camera"});
  EXPECT_NE(
      error_of(good, {"model.part_heatmaps=true", "model.anchor=true", "model.label_input=true", "loss.ownership=true"})
          .find("key 'model.part_heatmaps' cannot be used with model.anchor"),
      std::string::npos);
  EXPECT_NE(error_of(good, {"model.part_heatmaps=true", "model.heatmap_stage=9"}).find("key 'model.heatmap_stage'"),
            std::string::npos);
  for (const std::string sigma : {"0", "1.5"})
    EXPECT_NE(error_of(good, {"model.heatmap_sigma=" + sigma}).find("key 'model.heatmap_sigma'"), std::string::npos);
  EXPECT_EQ(error_of(good, {"model.part_heatmaps=true"}), "no error");
  // The refined targets' settings and the validation cap.
  for (const std::string key : {"train.targets", "train.target_lr", "train.target_weight", "train.target_from",
                                "train.target_decay", "train.validate_images"})
    EXPECT_NE(error_of(good, {key + "=-1"}).find("key '" + key + "'"), std::string::npos)
        << error_of(good, {key + "=-1"});
  EXPECT_NE(error_of(good, {"train.target_decay=1.5"}).find("train.target_decay"), std::string::npos);
  EXPECT_NE(error_of(good, {"train.target_from=1"}).find("train.target_from"), std::string::npos);
  EXPECT_NE(error_of(good, {"train.target_lr=0"}).find("train.target_lr"), std::string::npos);
  // The moving average's decay is in [0, 1).
  for (const std::string bad : {"train.ema=-0.1", "train.ema=1"})
    EXPECT_NE(error_of(good, {bad}).find("key 'train.ema' must be in [0, 1)"), std::string::npos)
        << error_of(good, {bad});
  EXPECT_EQ(error_of(good, {"train.ema=0.999"}), "no error");
}

TEST(ConfigFiles, ShippedConfigsParseAndValidate) {
  // Keys, types and every range check; the data folders (made by the demo, the benchmark
  // commands or a download) are replaced by an empty folder that exists.
  const auto data = testing::temp_dir("shipped_configs");
  io::write_file_atomic(data / "init.pt", "");
  io::write_file_atomic(data / "resnet.pth", "");
  int64_t files = 0;
  for (const auto& entry : fs::directory_iterator(LEPARD_CONFIGS_DIR)) {
    if (entry.path().extension() != ".yaml") continue;
    ++files;
    SCOPED_TRACE(entry.path().string());
    TrainConfig c;
    ASSERT_NO_THROW(c.schema().load_file(entry.path()));
    c.data.root = data.string();
    c.data.cache.clear();
    // Files a run makes first (model.init: the horse model the other categories start from).
    if (!c.model.init.empty()) c.model.init = (data / "init.pt").string();
    if (!c.model.encoder_weights.empty()) c.model.encoder_weights = (data / "resnet.pth").string();
    EXPECT_NO_THROW(c.validate(entry.path().string()));
  }
  EXPECT_GE(files, 12);  // the demo's, the benchmark's two, three Pascal-Part and six LASSIE ones
}

TEST(ConfigFiles, TheLabelInputBenchmarkIsTheBenchmarkRecipeWithTheLabelsSeen) {
  // synthetic_horse_1200_labels.yaml is documented as the benchmark recipe plus model.label_input
  // on its own (16-cluster) cache, its schedule stretched to 4,400 steps and its flips swapping
  // the mirrored clusters (docs/BENCHMARKS.md, "Flips that swap the mirrored clusters"), and
  // part heatmaps on (since 2026-12-07, "Part heatmaps"): any other difference would make its
  // figures a different recipe's.
  TrainConfig base, labels;
  base.schema().load_file(fs::path(LEPARD_CONFIGS_DIR) / "synthetic_horse_1200.yaml");
  labels.schema().load_file(fs::path(LEPARD_CONFIGS_DIR) / "synthetic_horse_1200_labels.yaml");
  EXPECT_FALSE(base.model.label_input);
  EXPECT_TRUE(labels.model.label_input);
  EXPECT_NE(labels.data.cache, base.data.cache);
  EXPECT_NE(labels.train.out, base.train.out);
  EXPECT_EQ(base.train.steps, 3600);
  EXPECT_EQ(labels.train.steps, 4400);
  EXPECT_TRUE(base.train.flip);
  EXPECT_TRUE(labels.train.flip);
  EXPECT_EQ(base.train.flip_clusters, TrainConfig::Train::FlipClusters::Keep);
  EXPECT_EQ(labels.train.flip_clusters, TrainConfig::Train::FlipClusters::Mirror);
  EXPECT_FALSE(base.model.part_heatmaps);
  EXPECT_TRUE(labels.model.part_heatmaps);
  labels.model.label_input = false;
  labels.model.part_heatmaps = false;
  labels.train.flip_clusters = base.train.flip_clusters;
  labels.train.steps = base.train.steps;
  labels.data.cache = base.data.cache;
  labels.train.out = base.train.out;
  EXPECT_EQ(labels.schema().to_yaml(), base.schema().to_yaml());
}

}  // namespace
}  // namespace lepard::train
