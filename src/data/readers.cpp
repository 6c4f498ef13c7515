#include "csv.h"
#include "reader_helpers.h"

#include <lepard/data/keypoints.h>
#include <lepard/data/readers.h>
#include <lepard/io/image_io.h>

#include <ATen/TensorOperators.h>
#include <ATen/ops/zeros.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>
#include <tuple>
#include <vector>

namespace lepard::data {

namespace fs = std::filesystem;

namespace {

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError(path.string() + ": cannot open");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

using detail::guarded;
using detail::load_image;
using detail::wanted;

}  // namespace

ReadResult read_lassie_web_images(const fs::path& root, const std::string& category, const ReaderOptions& options) {
  const fs::path csv_path = root / "annotations" / (category + ".csv");
  if (!fs::exists(csv_path)) {
    throw DataError(csv_path.string() + ": no such annotation file (expected the LASSIE layout root/annotations/" +
                    category + ".csv and root/images/" + category + "/input_<id>.png)");
  }
  const auto parsed = detail::parse_csv(read_text(csv_path));
  ReadResult result;
  for (const auto& error : parsed.errors) {  // (a lambda cannot capture a structured binding before C++20)
    guarded(options, result, [&] {
      throw DataError(csv_path.string() + ":" + std::to_string(error.first) + ": malformed CSV row: " + error.second);
    });
  }
  if (parsed.rows.empty()) throw DataError(csv_path.string() + ": no header row");
  const auto& header = parsed.rows[0].fields;
  auto column = [&](const std::string& name) -> int64_t {
    const auto it = std::find(header.begin(), header.end(), name);
    return it == header.end() ? -1 : static_cast<int64_t>(it - header.begin());
  };
  const int64_t id_col = column("id"), kps_col = column("kps");
  if (id_col < 0) throw DataError(csv_path.string() + ": the header has no 'id' column");

  std::map<std::string, int64_t> first_row;  // id -> line of its first row
  for (size_t r = 1; r < parsed.rows.size(); ++r) {
    const auto& row = parsed.rows[r];
    const std::string where = csv_path.string() + ":" + std::to_string(row.line);
    guarded(options, result, [&] {
      if (static_cast<int64_t>(row.fields.size()) != static_cast<int64_t>(header.size())) {
        throw DataError(where + ": " + std::to_string(row.fields.size()) + " fields, the header has " +
                        std::to_string(header.size()));
      }
      const std::string& image_id = row.fields[id_col];
      if (image_id.empty()) throw DataError(where + ": an empty id");
      // A repeated id would be trained on and scored twice: the first row counts.
      const auto [first, fresh] = first_row.emplace(image_id, row.line);
      if (!fresh) {
        throw DataError(where + " (id " + image_id + "): the id repeats line " + std::to_string(first->second) +
                        "; only the first row is read");
      }
      Sample s;
      s.id = category + "/" + image_id;
      if (!wanted(s.id, options)) return;
      s.image_path = root / "images" / category / ("input_" + image_id + ".png");
      // The annotation first (a broken row is reported as such), then the image.
      std::vector<std::tuple<int64_t, double, double>> percent;  // slot, x %, y %
      if (kps_col >= 0 && !row.fields[kps_col].empty()) {
        nlohmann::json list;
        try {
          list = nlohmann::json::parse(row.fields[kps_col]);
        } catch (const nlohmann::json::parse_error& e) {
          throw DataError(where + " (id " + image_id + "): kps is not valid JSON: " + e.what());
        }
        if (!list.is_array()) throw DataError(where + " (id " + image_id + "): kps is not a JSON list");
        for (const auto& kp : list) {
          if (!kp.is_object() || !kp.contains("x") || !kp.contains("y") || !kp.contains("keypointlabels") ||
              !kp["keypointlabels"].is_array() || kp["keypointlabels"].empty() ||
              !kp["keypointlabels"][0].is_string() || !kp["x"].is_number() || !kp["y"].is_number()) {
            throw DataError(where + " (id " + image_id +
                            "): a keypoint lacks numeric x, y or keypointlabels: " + kp.dump());
          }
          const std::string label = kp["keypointlabels"][0].get<std::string>();
          const int64_t slot = keypoint_slot_from_label(label);
          if (slot < 0) throw DataError(where + " (id " + image_id + "): unknown keypoint label '" + label + "'");
          percent.emplace_back(slot, kp["x"].get<double>(), kp["y"].get<double>());
        }
      }
      const auto image = load_image(s.image_path);
      s.original_height = image.size(0);
      s.original_width = image.size(1);
      auto kps = at::zeros({kNumKeypoints, 3}, at::kDouble);
      auto k = kps.accessor<double, 2>();
      const bool any = !percent.empty();
      for (const auto& [slot, x, y] : percent) {
        k[slot][0] = x * static_cast<double>(s.original_width) / 100.0;
        k[slot][1] = y * static_cast<double>(s.original_height) / 100.0;
        k[slot][2] = 1.0;
      }
      double left = 0, top = 0, width = static_cast<double>(s.original_width),
             height = static_cast<double>(s.original_height);
      if (any) {
        double x0 = 1e300, y0 = 1e300, x1 = -1e300, y1 = -1e300;
        for (int64_t i = 0; i < kNumKeypoints; ++i) {
          if (k[i][2] <= 0) continue;
          x0 = std::min(x0, k[i][0]);
          x1 = std::max(x1, k[i][0]);
          y0 = std::min(y0, k[i][1]);
          y1 = std::max(y1, k[i][1]);
        }
        left = x0;
        top = y0;
        width = x1 - x0;
        height = y1 - y0;
      }
      s.crop = square_crop_box(left, top, width, height);
      const fs::path mask_path = root / "gt" / category / ("mask_" + image_id + ".png");
      if (s.crop.size <= 0 && fs::exists(mask_path)) {
        // Fewer than two distinct visible keypoints: where there is a ground-truth mask, the
        // crop surrounds the mask instead (the rule Pascal-Part's reader applies to part pixels).
        const auto nonzero = (load_image(mask_path).select(2, 0) > 127).nonzero();
        if (nonzero.size(0) > 0) {
          const auto lo = std::get<0>(nonzero.min(0)), hi = std::get<0>(nonzero.max(0));
          const double y0 = lo[0].item<double>(), x0 = lo[1].item<double>();
          s.crop = square_crop_box(x0, y0, hi[1].item<double>() + 1 - x0, hi[0].item<double>() + 1 - y0);
          ++result.mask_box_crops;
        }
      }
      if (s.crop.size <= 0)
        throw DataError(where + " (id " + image_id +
                        "): the visible keypoints span no area and there is no ground-truth mask to crop by "
                        "(skip such inputs with --skip-bad)");
      s.image = crop_image(image, s.crop, options.crop_size);
      if (kps_col >= 0) s.keypoints = crop_keypoints(kps, s.crop, options.crop_size);
      // Ground truth beside the layout, when there is some (the synthetic menagerie writes it):
      // root/gt/<category>/mask_<id>.png (0 / 255) and parts_<id>.png (labels 0..16).
      const fs::path gt = root / "gt" / category;
      for (const auto& [file, target] : {std::make_pair("mask_", &s.mask), std::make_pair("parts_", &s.part_labels)}) {
        const fs::path path = gt / (file + image_id + ".png");
        if (!fs::exists(path)) continue;
        const auto map = load_image(path).select(2, 0).contiguous();
        if (map.size(0) != s.original_height || map.size(1) != s.original_width) {
          throw DataError(path.string() + " does not have the size of its image " + s.image_path.string());
        }
        *target = crop_image(std::string(file) == "mask_" ? (map > 127).to(at::kByte) : map, s.crop, options.crop_size,
                             Interpolation::Nearest);
      }
      result.samples.push_back(std::move(s));
    });
  }
  return result;
}

ReadResult read_image_folder(const fs::path& folder, const ReaderOptions& options) {
  if (!fs::is_directory(folder)) throw DataError(folder.string() + ": not a folder");
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(folder)) {
    if (!entry.is_regular_file()) continue;
    std::string ext = entry.path().extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
    if (ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  ReadResult result;
  for (const auto& path : files) {
    guarded(options, result, [&] {
      Sample s;
      s.id = path.filename().string();
      if (!wanted(s.id, options)) return;
      s.image_path = path;
      const auto image = load_image(path);
      s.original_height = image.size(0);
      s.original_width = image.size(1);
      // The centred square of side max(w, h): scale 1 of LASSIE's rule on the whole image.
      s.crop =
          square_crop_box(0, 0, static_cast<double>(s.original_width), static_cast<double>(s.original_height), 1.0);
      s.image = crop_image(image, s.crop, options.crop_size);
      result.samples.push_back(std::move(s));
    });
  }
  return result;
}

}  // namespace lepard::data
