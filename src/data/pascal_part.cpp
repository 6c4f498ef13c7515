// Pascal-Part annotations through libmatio, after a structural check (mat_check.h).
#include "reader_helpers.h"

#include <lepard/data/keypoints.h>
#include <lepard/data/mat_check.h>
#include <lepard/data/readers.h>
#include <lepard/io/image_io.h>

#include <ATen/TensorOperators.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <matio.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace lepard::data {

namespace fs = std::filesystem;

int64_t part_label_from_pascal_name(const std::string& name) {
  // LASSIE's grouping (google/lassie utils/data_utils.py part_indices).
  static const std::map<std::string, int64_t> labels = {
      {"neck", 1},    {"head", 2},    {"lear", 2},    {"rear", 2},    {"leye", 2},    {"reye", 2},    {"lhorn", 2},
      {"rhorn", 2},   {"muzzle", 2},  {"nose", 2},    {"torso", 3},   {"tail", 4},    {"rfuleg", 9},  {"lfuleg", 10},
      {"rbuleg", 11}, {"lbuleg", 12}, {"rflleg", 13}, {"lflleg", 14}, {"rblleg", 15}, {"lblleg", 16}, {"rfho", 13},
      {"lfho", 14},   {"rbho", 15},   {"lbho", 16},   {"rfpa", 13},   {"lfpa", 14},   {"rbpa", 15},   {"lbpa", 16},
      {"rfleg", 9},   {"lfleg", 10},  {"rbleg", 11},  {"lbleg", 12}};
  const auto it = labels.find(name);
  return it == labels.end() ? 0 : it->second;
}

namespace {

struct MatFileCloser {
  void operator()(mat_t* f) const { Mat_Close(f); }
};
struct MatVarFreer {
  void operator()(matvar_t* v) const { Mat_VarFree(v); }
};

size_t numel(const matvar_t* v) {
  size_t n = 1;
  for (int i = 0; i < v->rank; ++i) n *= v->dims[i];
  return n;
}

// A MATLAB char array as a string (1- or 2-byte characters; ASCII expected).
std::string mat_string(const matvar_t* v, const std::string& where) {
  if (!v || v->class_type != MAT_C_CHAR || !v->data) throw DataError(where + " is not a string");
  const size_t n = numel(v);
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    const unsigned code =
        v->data_size == 2 ? static_cast<const uint16_t*>(v->data)[i] : static_cast<const uint8_t*>(v->data)[i];
    out += static_cast<char>(code < 128 ? code : '?');
  }
  return out;
}

// A 2D numeric MATLAB array (column-major) as a (H, W) uint8 mask: nonzero -> 1.
at::Tensor mat_mask(const matvar_t* v, const std::string& where) {
  if (!v || v->rank != 2 || !v->data) throw DataError(where + " is not a 2D array");
  const int64_t H = static_cast<int64_t>(v->dims[0]), W = static_cast<int64_t>(v->dims[1]);
  auto out = at::zeros({H, W}, at::kByte);
  uint8_t* o = out.data_ptr<uint8_t>();
  auto fill = [&](auto* data) {
    for (int64_t c = 0; c < W; ++c)
      for (int64_t r = 0; r < H; ++r) o[r * W + c] = data[c * H + r] != 0;
  };
  switch (v->class_type) {
    case MAT_C_UINT8:
      fill(static_cast<const uint8_t*>(v->data));
      break;
    case MAT_C_INT8:
      fill(static_cast<const int8_t*>(v->data));
      break;
    case MAT_C_UINT16:
      fill(static_cast<const uint16_t*>(v->data));
      break;
    case MAT_C_INT32:
      fill(static_cast<const int32_t*>(v->data));
      break;
    case MAT_C_SINGLE:
      fill(static_cast<const float*>(v->data));
      break;
    case MAT_C_DOUBLE:
      fill(static_cast<const double*>(v->data));
      break;
    default:
      throw DataError(where + " has an unsupported element type");
  }
  return out;
}

const matvar_t* field(const matvar_t* s, const char* name, size_t index, const std::string& where) {
  const matvar_t* f = Mat_VarGetStructFieldByName(const_cast<matvar_t*>(s), name, index);
  if (!f) throw DataError(where + " has no field '" + name + "'");
  return f;
}

// LASSIE's find_corners: the centroid, and the first pixel in row-major order of the lowest
// and of the highest row (that is, the leftmost one), as (x, y).
struct Corners {
  double cx = 0, cy = 0;
  int64_t bottom_x = 0, bottom_y = -1, top_x = 0, top_y = -1;
  bool any = false;
};
Corners find_corners(const at::Tensor& mask) {
  Corners c;
  const int64_t H = mask.size(0), W = mask.size(1);
  const uint8_t* m = mask.data_ptr<uint8_t>();
  int64_t n = 0;
  for (int64_t r = 0; r < H; ++r) {
    for (int64_t x = 0; x < W; ++x) {
      if (!m[r * W + x]) continue;
      if (!c.any) {
        c.top_x = x;
        c.top_y = r;
        c.any = true;
      }
      if (r > c.bottom_y) {
        c.bottom_x = x;
        c.bottom_y = r;
      }
      c.cx += x;
      c.cy += r;
      ++n;
    }
  }
  if (n > 0) {
    c.cx /= n;
    c.cy /= n;
  }
  return c;
}

std::string trim_id(std::string line) {
  while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
  size_t start = 0;
  while (start < line.size() && std::isspace(static_cast<unsigned char>(line[start]))) ++start;
  line = line.substr(start);
  if (line.size() > 4 && line.compare(line.size() - 4, 4, ".jpg") == 0) line.resize(line.size() - 4);
  return line;
}

}  // namespace

ReadResult read_pascal_part(const fs::path& root, const std::string& category, const ReaderOptions& options) {
  const fs::path list_path = root / "image_sets" / (category + ".txt");
  std::ifstream list(list_path);
  if (!list) {
    throw DataError(list_path.string() + ": cannot open the image list (expected the Pascal-Part layout " +
                    "root/image_sets/<class>.txt, root/JPEGImages, root/Annotations_Part)");
  }
  ReadResult result;
  std::string line;
  std::map<std::string, int64_t> first_line;  // id -> its first line in the list
  int64_t line_number = 0;
  while (std::getline(list, line)) {
    ++line_number;
    const std::string id = trim_id(line);
    if (id.empty()) continue;
    const auto seen = first_line.emplace(id, line_number);
    if (!seen.second) {  // a repeated id would be trained on and scored twice
      const std::string message = list_path.string() + ":" + std::to_string(line_number) + ": " + id +
                                  " repeats line " + std::to_string(seen.first->second) + "; only the first is read";
      detail::guarded(options, result, [&] { throw DataError(message); });
      continue;
    }
    if (!detail::wanted(id, options)) continue;
    detail::guarded(options, result, [&] {
      const fs::path mat_path = root / "Annotations_Part" / (id + ".mat");
      const std::string where = mat_path.string();
      if (!fs::exists(mat_path)) throw DataError(where + ": does not exist");
      check_mat_v5(mat_path);  // libmatio trusts declared sizes (mat_check.h)
      std::unique_ptr<mat_t, MatFileCloser> file(Mat_Open(mat_path.c_str(), MAT_ACC_RDONLY));
      if (!file) throw DataError(where + ": not a readable MATLAB file (truncated or another format)");
      std::unique_ptr<matvar_t, MatVarFreer> anno(Mat_VarRead(file.get(), "anno"));
      if (!anno) throw DataError(where + ": no variable 'anno' (expected a Pascal-Part annotation)");
      if (anno->class_type != MAT_C_STRUCT) throw DataError(where + ": 'anno' is not a struct");
      const matvar_t* objects = field(anno.get(), "objects", 0, where + ": anno");
      if (objects->class_type != MAT_C_STRUCT || numel(objects) == 0) {
        throw DataError(where + ": anno.objects is empty or not a struct array");
      }
      size_t chosen = 0;
      for (size_t i = numel(objects); i-- > 0;) {
        if (mat_string(field(objects, "class", i, where + ": anno.objects"), where + ": anno.objects.class") ==
            category) {
          chosen = i;
        }
      }
      const std::string obj_where = where + ": anno.objects(" + std::to_string(chosen + 1) + ")";
      const matvar_t* parts = field(objects, "parts", chosen, obj_where);
      Sample s;
      s.id = id;
      at::Tensor part_map;
      auto kps = at::zeros({kNumKeypoints, 3}, at::kDouble);
      auto k = kps.accessor<double, 2>();
      const size_t n_parts = parts->class_type == MAT_C_STRUCT ? numel(parts) : 0;
      for (size_t j = 0; j < n_parts; ++j) {
        const std::string part_where = obj_where + ".parts(" + std::to_string(j + 1) + ")";
        const std::string name = mat_string(field(parts, "part_name", j, part_where), part_where + ".part_name");
        const auto mask = mat_mask(field(parts, "mask", j, part_where), part_where + ".mask");
        if (!part_map.defined()) part_map = at::zeros_like(mask);
        if (mask.sizes() != part_map.sizes()) throw DataError(part_where + ".mask differs in size from the others");
        const int64_t label = part_label_from_pascal_name(name);
        if (label == 0) {
          spdlog::debug("{}: part '{}' is outside the LASSIE grouping; ignored", part_where, name);
          continue;
        }
        part_map.masked_fill_(mask.to(at::kBool), label);
        const int64_t slot = keypoint_slot_from_name(name);
        if (slot < 0) continue;
        const auto c = find_corners(mask);
        if (!c.any) continue;
        double x = c.cx, y = c.cy;
        if (name == "muzzle") {
          x = (c.cx + c.bottom_x) / 2;
          y = (c.cy + c.bottom_y) / 2;
        } else if (name == "tail") {
          x = static_cast<double>(c.top_x);
          y = static_cast<double>(c.top_y);
        } else if (name.size() == 6 && name.compare(3, 3, "leg") == 0) {  // rfuleg, lblleg, ...
          x = static_cast<double>(c.bottom_x);
          y = static_cast<double>(c.bottom_y);
        }
        k[slot][0] = x;
        k[slot][1] = y;
        k[slot][2] = 1;
      }
      k[5][2] = 0;  // LASSIE: the tail top is often occluded
      if (!part_map.defined() || part_map.max().item<uint8_t>() == 0) {
        throw DataError(obj_where + " has no parts in the LASSIE grouping");
      }
      const matvar_t* obj_mask = Mat_VarGetStructFieldByName(const_cast<matvar_t*>(objects), "mask", chosen);
      const auto mask = obj_mask && obj_mask->rank == 2 && numel(obj_mask) == static_cast<size_t>(part_map.numel())
                            ? mat_mask(obj_mask, obj_where + ".mask")
                            : (part_map > 0).to(at::kByte);
      s.image_path = root / "JPEGImages" / (id + ".jpg");
      const at::Tensor image = detail::load_image(s.image_path);
      if (image.size(0) != part_map.size(0) || image.size(1) != part_map.size(1)) {
        throw DataError(s.image_path.string() + " is " + std::to_string(image.size(1)) + " x " +
                        std::to_string(image.size(0)) + " but its annotation " + where + " is " +
                        std::to_string(part_map.size(1)) + " x " + std::to_string(part_map.size(0)));
      }
      s.original_height = image.size(0);
      s.original_width = image.size(1);
      // The crop box surrounds the labelled pixels.
      const auto nz = (part_map > 0).nonzero();  // (n, 2) rows, columns
      const double top = nz.select(1, 0).min().item<int64_t>(), bottom = nz.select(1, 0).max().item<int64_t>();
      const double left = nz.select(1, 1).min().item<int64_t>(), right = nz.select(1, 1).max().item<int64_t>();
      s.crop = square_crop_box(left, top, right - left, bottom - top);
      if (s.crop.size <= 0) throw DataError(obj_where + ": the labelled parts span no area");
      s.image = crop_image(image, s.crop, options.crop_size);
      s.part_labels = crop_image(part_map, s.crop, options.crop_size, Interpolation::Nearest);
      s.mask = crop_image(mask, s.crop, options.crop_size, Interpolation::Nearest);
      s.keypoints = crop_keypoints(kps, s.crop, options.crop_size);
      result.samples.push_back(std::move(s));
    });
  }
  return result;
}

}  // namespace lepard::data
