#include <lepard/data/keypoints.h>

#include <string>

namespace lepard::data {

namespace {

// The index in [first, last] whose name is index's with its leading 'l' and 'r' swapped (the
// left/right counterpart), or -1: no such name, or index's name starts with neither.
template <class NameOf>
int64_t mirror_by_name(int64_t index, int64_t first, int64_t last, NameOf name_of) {
  if (index < first || index > last) return -1;
  std::string name(name_of(index));
  if (name.empty() || (name[0] != 'l' && name[0] != 'r')) return -1;
  name[0] = name[0] == 'l' ? 'r' : 'l';
  for (int64_t i = first; i <= last; ++i)
    if (name_of(i) == name) return i;
  return -1;
}

}  // namespace

const std::array<std::string_view, kNumKeypoints>& keypoint_names() {
  static const std::array<std::string_view, kNumKeypoints> names = {"leye",   "reye",   "lear",   "rear",   "muzzle",
                                                                    "tail",   "rfuleg", "rbuleg", "lfuleg", "lbuleg",
                                                                    "rflleg", "rblleg", "lflleg", "lblleg"};
  return names;
}

int64_t keypoint_slot_from_name(std::string_view name) {
  const auto& names = keypoint_names();
  for (int64_t i = 0; i < kNumKeypoints; ++i) {
    if (names[i] == name) return i;
  }
  return -1;
}

int64_t keypoint_mirror(int64_t slot) {
  return mirror_by_name(slot, 0, kNumKeypoints - 1, [](int64_t i) { return keypoint_names()[static_cast<size_t>(i)]; });
}

const std::array<std::string_view, kNumKeypoints>& keypoint_labels() {
  // The labels of LASSIE's Label-Studio project (google/lassie utils/data_utils.py), by slot.
  static const std::array<std::string_view, kNumKeypoints> labels = {"Left eye",
                                                                     "Right eye",
                                                                     "Left ear",
                                                                     "Right ear",
                                                                     "Muzzle (tip of nose)",
                                                                     "Tail top",
                                                                     "Front right upper leg (knee)",
                                                                     "Back right upper leg (knee)",
                                                                     "Front left upper leg (knee)",
                                                                     "Back left upper leg (knee)",
                                                                     "Front right lower leg (ankle)",
                                                                     "Back right lower leg (ankle)",
                                                                     "Front left lower leg (ankle)",
                                                                     "Back left lower leg (ankle)"};
  return labels;
}

int64_t keypoint_slot_from_label(std::string_view label) {
  const auto& labels = keypoint_labels();
  for (int64_t i = 0; i < kNumKeypoints; ++i) {
    if (labels[static_cast<size_t>(i)] == label) return i;
  }
  return -1;
}

std::string_view part_label_name(int64_t label) {
  static const std::array<std::string_view, kNumPartLabels + 1> names = {
      "background", "neck",   "head",   "torso",  "tail",   "unused5", "unused6", "unused7", "unused8",
      "rfuleg",     "lfuleg", "rbuleg", "lbuleg", "rflleg", "lflleg",  "rblleg",  "lblleg"};
  return label >= 0 && label <= kNumPartLabels ? names[static_cast<size_t>(label)] : std::string_view("invalid");
}

int64_t part_label_mirror(int64_t label) {
  // Label 0, the background, has no counterpart.
  return mirror_by_name(label, 1, kNumPartLabels, part_label_name);
}

}  // namespace lepard::data
