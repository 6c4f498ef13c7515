#pragma once
// The 14 keypoint slots and 16 part labels of the LASSIE family (docs/references.md section 1).

#include <array>
#include <cstdint>
#include <string_view>

namespace lepard::data {

constexpr int64_t kNumKeypoints = 14;
constexpr int64_t kNumPartLabels = 16;

// Slot names: leye 0, reye 1, lear 2, rear 3, muzzle 4, tail 5, rfuleg 6, rbuleg 7,
// lfuleg 8, lbuleg 9, rflleg 10, rblleg 11, lflleg 12, lblleg 13.
const std::array<std::string_view, kNumKeypoints>& keypoint_names();

// The LASSIE web-image annotation label of each slot ("Left eye", ..., "Back left lower leg
// (ankle)"), as LASSIE's Label-Studio project names them.
const std::array<std::string_view, kNumKeypoints>& keypoint_labels();

// The slot of a LASSIE web-image annotation label ("Front right upper leg (knee)" -> 6),
// or -1 for an unknown label.
int64_t keypoint_slot_from_label(std::string_view label);

// The slot of a short name ("rfuleg" -> 6), or -1.
int64_t keypoint_slot_from_name(std::string_view name);

// The left/right counterpart of a slot ("rfuleg" 6 -> "lfuleg" 8, "leye" 0 -> "reye" 1), or
// -1 for the muzzle and the tail (and for a slot out of range).
int64_t keypoint_mirror(int64_t slot);

// Part label names, index 1..16: neck, head, torso, tail, (5-8 unused by the grouping),
// rfuleg, lfuleg, rbuleg, lbuleg, rflleg, lflleg, rblleg, lblleg.
std::string_view part_label_name(int64_t label);

// The left/right counterpart of a part label ("rfuleg" 9 -> "lfuleg" 10), or -1 for the
// background, neck, head, torso and tail (and for a label out of range).
int64_t part_label_mirror(int64_t label);

}  // namespace lepard::data
