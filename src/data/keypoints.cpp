#include <lepard/data/keypoints.h>

#include <utility>

namespace lepard::data {

const std::array<std::string_view, kNumKeypoints>& keypoint_names() {
  static const std::array<std::string_view, kNumKeypoints> names = {
      "leye", "reye", "lear", "rear", "muzzle", "tail", "rfuleg",
      "rbuleg", "lfuleg", "lbuleg", "rflleg", "rblleg", "lflleg", "lblleg"};
  return names;
}

int64_t keypoint_slot_from_name(std::string_view name) {
  const auto& names = keypoint_names();
  for (int64_t i = 0; i < kNumKeypoints; ++i) {
    if (names[i] == name) return i;
  }
  return -1;
}

int64_t keypoint_slot_from_label(std::string_view label) {
  // The labels of LASSIE's Label-Studio project (google/lassie utils/data_utils.py).
  static const std::pair<std::string_view, std::string_view> labels[] = {
      {"Muzzle (tip of nose)", "muzzle"},
      {"Right eye", "reye"},
      {"Right ear", "rear"},
      {"Left eye", "leye"},
      {"Left ear", "lear"},
      {"Front right upper leg (knee)", "rfuleg"},
      {"Front right lower leg (ankle)", "rflleg"},
      {"Front left upper leg (knee)", "lfuleg"},
      {"Front left lower leg (ankle)", "lflleg"},
      {"Back right upper leg (knee)", "rbuleg"},
      {"Back right lower leg (ankle)", "rblleg"},
      {"Back left upper leg (knee)", "lbuleg"},
      {"Back left lower leg (ankle)", "lblleg"},
      {"Tail top", "tail"},
  };
  for (const auto& [l, name] : labels) {
    if (l == label) return keypoint_slot_from_name(name);
  }
  return -1;
}

std::string_view part_label_name(int64_t label) {
  static const std::array<std::string_view, kNumPartLabels + 1> names = {
      "background", "neck", "head", "torso", "tail", "unused5", "unused6", "unused7", "unused8",
      "rfuleg", "lfuleg", "rbuleg", "lbuleg", "rflleg", "lflleg", "rblleg", "lblleg"};
  return label >= 0 && label <= kNumPartLabels ? names[static_cast<size_t>(label)] : std::string_view("invalid");
}

}  // namespace lepard::data
