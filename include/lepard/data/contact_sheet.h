#pragma once
// A contact sheet of a dataset: every sample's crop with its ground truth overlaid.

#include <lepard/data/sample.h>

#include <ATen/core/Tensor.h>

#include <vector>

namespace lepard::data {

// (H, W, 3) uint8: a grid of `columns` crops; part labels blended in their colours (or the
// mask in white where there are no part labels), the mask's outline, and keypoints as
// dots (filled: visible; the 14 slots have fixed colours).
at::Tensor contact_sheet(const std::vector<Sample>& samples, int64_t columns = 8);

}  // namespace lepard::data
