#include <lepard/data/contact_sheet.h>
#include <lepard/features/prepare.h>

#include <lepard/core/hash.h>
#include <lepard/features/surrogate.h>
#include <lepard/io/atomic_file.h>
#include <lepard/io/image_io.h>
#include <lepard/io/indexed_png.h>
#include <lepard/io/npy.h>
#include <lepard/render/pictures.h>

#include <ATen/TensorOperators.h>
#include <ATen/ops/linalg_vector_norm.h>
#include <ATen/ops/stack.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>

namespace lepard::features {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return in ? std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()) : std::string();
}

// What the feature files depend on.
nlohmann::json feature_settings(const std::vector<data::Sample>& samples, const PrepareOptions& o, const DinoVit* vit) {
  nlohmann::json j;
  j["crop_size"] = samples.empty() ? 0 : samples[0].image.size(0);
  if (o.surrogate) {
    j["source"] = "surrogate";
    j["grid"] = o.surrogate_grid;
  } else {
    std::error_code ec;
    j["source"] = "weights";
    j["weights"] = fs::absolute(o.weights).string();
    j["weights_bytes"] = static_cast<int64_t>(fs::file_size(o.weights, ec));
    j["weights_modified"] = static_cast<int64_t>(fs::last_write_time(o.weights, ec).time_since_epoch().count());
    j["arch"] = vit->arch().name();
    j["image_size"] = o.image_size;
    j["stride"] = o.stride;
    j["facet"] = to_string(o.facet);
    j["layer"] = o.layer;
    j["saliency_heads"] = o.saliency_heads;
  }
  return j;
}

nlohmann::json coseg_settings(const CosegOptions& c) {
  nlohmann::json j = {{"saliency_threshold", c.saliency_threshold},
                      {"distance_threshold", c.distance_threshold},
                      {"fg_clusters", c.fg_clusters},
                      {"bg_clusters", c.bg_clusters},
                      {"elbow", c.elbow},
                      {"max_k", c.max_k},
                      {"elbow_ratio", c.elbow_ratio},
                      {"max_fit_points", c.max_fit_points},
                      {"pca_dims", c.pca_dims},
                      {"iterations", c.kmeans.iterations},
                      {"restarts", c.kmeans.restarts},
                      {"seed", c.kmeans.seed}};
  // Only for the vote, so that caches made with LASSIE's rule (the default before 2026-12-03)
  // stay valid under it.
  if (c.foreground == Foreground::vote) {
    j["foreground"] = foreground_name(c.foreground);
    j["vote_saliency"] = c.vote_saliency;
    j["vote_share"] = c.vote_share;
  }
  return j;
}

// A cached pair of maps, if both read and agree with each other.
bool read_cached(const fs::path& fpath, const fs::path& spath, at::Tensor* f, at::Tensor* s) {
  try {
    if (!fs::exists(fpath) || !fs::exists(spath)) return false;
    *f = io::read_npy(fpath);
    *s = io::read_npy(spath);
    return f->dim() == 3 && s->dim() == 2 && f->size(0) == s->size(0) && f->size(1) == s->size(1) &&
           f->scalar_type() == at::kFloat;
  } catch (const std::exception& e) {
    spdlog::debug("recomputing {}: {}", fpath.string(), e.what());
    return false;
  }
}

}  // namespace

io::Palette pseudo_label_palette(int64_t clusters) {
  const auto p = render::part_palette(clusters + 1).contiguous();
  io::Palette out{{0, 0, 0}};
  for (int64_t i = 1; i <= clusters; ++i) {
    const uint8_t* c = p.data_ptr<uint8_t>() + 3 * i;
    out.push_back({c[0], c[1], c[2]});
  }
  return out;
}

namespace {

// The settings that decide what a feature means: a stored cluster model labels features made
// with the same ones (the checkpoint may have moved; the surrogate resamples any crop side).
nlohmann::json comparable_features(nlohmann::json j) {
  j.erase("weights");
  j.erase("weights_modified");
  if (j.value("source", "") == "surrogate") j.erase("crop_size");
  return j;
}

void write_clusters(const fs::path& dir, const ClusterModel& m, const nlohmann::json& settings) {
  io::write_npy(dir / "parts.npy", m.parts.cpu().contiguous());
  io::write_npy(dir / "background.npy", m.background.cpu().contiguous());
  if (m.foreground == Foreground::vote) io::write_npy(dir / "fg_groups.npy", m.fg_groups.cpu().contiguous());
  nlohmann::json j = {
      {"foreground", foreground_name(m.foreground)}, {"clusters", m.clusters()}, {"features", settings}};
  io::write_file_atomic(dir / "clusters.json", j.dump(2) + "\n");  // last: the folder is complete
}

}  // namespace

fs::path clusters_dir(const fs::path& cache, const std::string& name) {
  return name.empty() ? cache / "clusters" : cache / "clusters" / name;
}

StoredClusters read_clusters(const fs::path& given) {
  fs::path dir = given;
  if (!fs::exists(dir / "clusters.json") && fs::is_directory(dir / "clusters")) {
    // A cache root: its one collection's clusters, or a list of them to choose from.
    std::vector<fs::path> found;
    for (const auto& e : fs::directory_iterator(dir / "clusters"))
      if (fs::exists(e.path() / "clusters.json")) found.push_back(e.path());
    if (fs::exists(dir / "clusters" / "clusters.json")) found.push_back(dir / "clusters");
    std::sort(found.begin(), found.end());
    if (found.size() != 1) {
      std::string names;
      for (const auto& f : found) names += (names.empty() ? "" : ", ") + f.string();
      throw data::DataError(given.string() + ": a cache with " + std::to_string(found.size()) +
                            " stored cluster models" + (found.empty() ? "" : " (" + names + "); name one"));
    }
    dir = found[0];
  }
  const auto json_path = dir / "clusters.json";
  if (!fs::exists(json_path))
    throw data::DataError(given.string() +
                          ": no stored clusters (clusters.json); lepard-prepare stores them under "
                          "<cache>/clusters/<category>/ since 2026-12-03: rerun it on the collection to add them");
  StoredClusters out;
  out.dir = dir;
  try {
    const auto j = nlohmann::json::parse(read_text(json_path));
    out.model.foreground = parse_foreground(j.at("foreground").get<std::string>(), json_path.string() + ": foreground");
    const auto& f = j.at("features");
    out.feature_settings = f.dump();
    out.crop_size = f.value("crop_size", int64_t{0});
    if (f.at("source").get<std::string>() == "surrogate") {
      out.features.surrogate = true;
      out.features.surrogate_grid = f.at("grid").get<int64_t>();
    } else {
      out.features.weights = f.at("weights").get<std::string>();
      out.features.image_size = f.at("image_size").get<int64_t>();
      out.features.stride = f.at("stride").get<int64_t>();
      out.features.facet = parse_facet(f.at("facet").get<std::string>());
      out.features.layer = f.at("layer").get<int64_t>();
      out.features.saliency_heads = f.at("saliency_heads").get<std::vector<int64_t>>();
      out.weights_arch = f.at("arch").get<std::string>();
    }
    const int64_t clusters = j.at("clusters").get<int64_t>();
    out.model.parts = io::read_npy(dir / "parts.npy").to(at::kFloat);
    out.model.background = io::read_npy(dir / "background.npy").to(at::kFloat);
    if (out.model.foreground == Foreground::vote)
      out.model.fg_groups = io::read_npy(dir / "fg_groups.npy").to(at::kFloat);
    const auto& p = out.model.parts;
    if (p.dim() != 2 || p.size(0) != clusters || p.size(0) < 1)
      throw std::runtime_error("parts.npy has shape " + c10::str(p.sizes()) + " for " + std::to_string(clusters) +
                               " clusters");
    for (const auto& [name, t] : {std::pair<const char*, const at::Tensor*>{"background.npy", &out.model.background},
                                  {"fg_groups.npy", &out.model.fg_groups}})
      if (t->defined() && (t->dim() != 2 || t->size(1) != p.size(1)))
        throw std::runtime_error(std::string(name) + " has shape " + c10::str(t->sizes()) +
                                 " for features of dimension " + std::to_string(p.size(1)));
  } catch (const data::DataError&) {
    throw;
  } catch (const std::exception& e) {
    throw data::DataError(dir.string() + ": unreadable stored clusters: " + e.what());
  }
  return out;
}

SampleFeatures sample_features(const data::Sample& s, const PrepareOptions& o, const DinoVit* vit) {
  if (o.surrogate) {
    auto maps = load_surrogate(s, o.surrogate_grid);
    return {maps.features, maps.saliency};
  }
  if (!vit) throw std::invalid_argument("sample_features: weights named but no ViT loaded");
  ExtractOptions eo;
  eo.facet = o.facet;
  eo.layer = o.layer;
  eo.stride = o.stride;
  const auto maps = extract_image(*vit, s.image, eo, o.saliency_heads, std::max<int64_t>(o.image_size, 0));
  return {maps.facet / at::linalg_vector_norm(maps.facet, 2, {-1}, true).clamp_min(1e-12), maps.saliency};
}

std::string input_stamp(const data::Sample& s) {
  uint64_t h = core::kFnvOffset;
  std::ifstream in(s.image_path, std::ios::binary);
  if (!s.image_path.empty() && in) {
    char buf[1 << 16];
    while (in.read(buf, sizeof buf) || in.gcount() > 0) h = core::fnv1a(buf, static_cast<size_t>(in.gcount()), h);
  } else if (s.image.defined()) {
    const auto bytes = s.image.contiguous();
    h = core::fnv1a(bytes.data_ptr(), static_cast<size_t>(bytes.numel()) * bytes.element_size(), h);
  }
  const int64_t box[3] = {s.crop.left, s.crop.top, s.crop.size};
  h = core::fmix64(core::fnv1a(box, sizeof box, h));
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return hex;
}

std::map<std::string, std::string> read_input_stamps(const fs::path& cache) {
  std::map<std::string, std::string> out;
  const auto text = read_text(cache / "features" / "inputs.json");
  if (text.empty()) return out;
  try {
    const auto j = nlohmann::json::parse(text);
    if (!j.is_object()) throw std::runtime_error("not a JSON object");
    for (auto it = j.cbegin(); it != j.cend(); ++it) out[it.key()] = it.value().get<std::string>();
  } catch (const std::exception& e) {
    spdlog::warn("{}: unreadable input stamps ({}); every sample counts as changed",
                 (cache / "features" / "inputs.json").string(), e.what());
    out.clear();
  }
  return out;
}

fs::path cache_path(const fs::path& cache, const std::string& kind, const std::string& id, const std::string& ext) {
  return cache / kind / (id + ext);
}

PrepareReport prepare_pseudo_labels(const std::vector<data::Sample>& samples, const fs::path& cache,
                                    const PrepareOptions& o) {
  if (samples.empty()) throw std::invalid_argument("prepare: no samples");
  if (o.surrogate == !o.weights.empty())
    throw std::invalid_argument("prepare: give exactly one feature source: weights or the surrogate");
  const int64_t crop = samples[0].image.size(0);
  for (const auto& s : samples)
    if (s.image.size(0) != crop || s.image.size(1) != crop)
      throw std::invalid_argument("prepare: sample " + s.id + " has a crop of another size");
  auto progress = [&](const std::string& stage, int64_t done, int64_t total) {
    if (o.progress) o.progress(stage, done, total);
  };

  std::optional<DinoVit> vit;
  if (!o.surrogate) {
    vit.emplace(DinoVit::load(o.weights));
    vit->to(o.device);
    spdlog::info("{} from {} ({} layout)", vit->arch().name(), o.weights.string(), vit->layout());
  }
  PrepareReport report;
  report.images = static_cast<int64_t>(samples.size());
  const auto settings = feature_settings(samples, o, vit ? &*vit : nullptr);
  // With o.assign, the stored clusters' feature settings are checked before any feature is
  // computed: a refusal costs nothing.
  std::optional<StoredClusters> stored;
  if (!o.assign.empty()) {
    stored = read_clusters(o.assign);
    const auto made = nlohmann::json::parse(stored->feature_settings);
    if (comparable_features(made) != comparable_features(settings))
      throw std::invalid_argument(o.assign.string() + ": the clusters were made from features " +
                                  comparable_features(made).dump() + ", this run's are " +
                                  comparable_features(settings).dump() +
                                  ": use the feature source and settings of the collection they came from");
  }
  const auto stamp_path = cache / "features" / "stamp.json";
  const bool stamp_ok = !o.force && read_text(stamp_path) == settings.dump(2);
  if (!stamp_ok) io::write_file_atomic(stamp_path, settings.dump(2));

  // 1. Features and saliency per sample.
  const auto start = Clock::now();
  std::vector<at::Tensor> features(samples.size()), saliency(samples.size());
  auto feature_options = o;
  if (feature_options.image_size <= 0) feature_options.image_size = crop;
  // Content stamps: a sample whose input changed since it was cached is recomputed.
  auto stamps = read_input_stamps(cache);
  for (size_t i = 0; i < samples.size(); ++i) {
    const auto& s = samples[i];
    const auto fpath = cache_path(cache, "features", s.id, ".npy"), spath = cache_path(cache, "saliency", s.id, ".npy");
    const auto stamp = input_stamp(s);
    const auto old_stamp = stamps.find(s.id);
    const bool same_input = old_stamp != stamps.end() && old_stamp->second == stamp;
    stamps[s.id] = stamp;
    if (stamp_ok && same_input && read_cached(fpath, spath, &features[i], &saliency[i])) {
      ++report.cached;
    } else {
      auto maps = sample_features(s, feature_options, vit ? &*vit : nullptr);
      features[i] = maps.features;
      saliency[i] = maps.saliency;
      io::write_npy(fpath, features[i]);
      io::write_npy(spath, saliency[i]);
      ++report.computed;
    }
    progress("features", static_cast<int64_t>(i) + 1, report.images);
  }
  report.feature_seconds = seconds_since(start);
  {
    nlohmann::json j = nlohmann::json::object();
    for (const auto& [id, stamp] : stamps) j[id] = stamp;
    io::write_file_atomic(cache / "features" / "inputs.json", j.dump(1) + "\n");
  }

  // 2. Co-segmentation of the whole collection, unless its result is cached and valid; or,
  // with o.assign, the labels of another collection's stored clusters.
  const auto coseg_start = Clock::now();
  nlohmann::json coseg_stamp = {{"features", settings}, {"coseg", coseg_settings(o.coseg)}};
  if (stored) coseg_stamp = {{"features", settings}, {"assign", fs::absolute(o.assign).string()}};
  std::string ids;
  for (const auto& s : samples) ids += s.id + "\n";
  coseg_stamp["ids"] = std::hash<std::string>{}(ids);
  std::string inputs;
  for (const auto& s : samples) inputs += stamps[s.id];
  coseg_stamp["inputs"] = core::fnv1a(inputs);
  const std::string suffix = o.name.empty() ? "" : "_" + o.name;
  const auto report_path = cache / ("prepare" + suffix + ".json");
  nlohmann::json previous;
  try {
    const auto text = read_text(report_path);
    if (!text.empty()) previous = nlohmann::json::parse(text);
  } catch (const std::exception&) {
  }
  std::vector<at::Tensor> labels;
  // Cached only with its stored clusters, which caches made before 2026-12-03 lack.
  if (!stored && !o.force && report.computed == 0 && previous.contains("stamp") && previous["stamp"] == coseg_stamp &&
      fs::exists(clusters_dir(cache, o.name) / "clusters.json")) {
    try {
      for (const auto& s : samples) labels.push_back(io::read_indexed_png(cache_path(cache, "labels", s.id, ".png")));
      report.coseg_cached = true;
      report.clusters = previous.value("clusters", 0);
      report.fg_fraction = previous.value("fg_fraction", 0.0);
      report.voted_groups = previous.value("voted_groups", int64_t{0});
    } catch (const std::exception& e) {
      spdlog::debug("recomputing the co-segmentation: {}", e.what());
      labels.clear();
    }
  }
  if (stored) {
    progress("labels", 0, report.images);
    double fg = 0, total = 0;
    const auto palette = pseudo_label_palette(stored->model.clusters());
    for (size_t i = 0; i < samples.size(); ++i) {
      labels.push_back(assign_labels(stored->model, features[i]));
      fg += (labels.back() > 0).sum().item<double>();
      total += static_cast<double>(labels.back().numel());
      io::write_indexed_png(cache_path(cache, "labels", samples[i].id, ".png"), labels.back(), palette);
      progress("labels", static_cast<int64_t>(i) + 1, report.images);
    }
    report.clusters = stored->model.clusters();
    report.fg_fraction = fg / total;
  } else if (!report.coseg_cached) {
    progress("co-segmentation", 0, 1);
    auto r = cosegment(features, saliency, o.coseg);
    labels = r.labels;
    report.clusters = r.clusters;
    report.fg_fraction = r.fg_fraction;
    if (r.model.fg_groups.defined()) report.voted_groups = r.model.fg_groups.size(0);
    const auto palette = pseudo_label_palette(r.clusters);
    for (size_t i = 0; i < samples.size(); ++i) {
      io::write_indexed_png(cache_path(cache, "labels", samples[i].id, ".png"), labels[i], palette);
      if (!r.pca.empty()) io::write_npy(cache_path(cache, "pca", samples[i].id, ".npy"), r.pca[i]);
    }
    write_clusters(clusters_dir(cache, o.name), r.model, settings);
    progress("co-segmentation", 1, 1);
  }
  report.coseg_seconds = seconds_since(coseg_start);

  // 3. Quality against ground truth where there is some, the report, the sheet.
  std::vector<at::Tensor> masks;
  for (const auto& s : samples)
    if (s.mask.defined()) masks.push_back(s.mask);
  if (masks.size() == samples.size()) report.foreground_iou = foreground_iou(labels, masks);

  nlohmann::json j;
  j["stamp"] = coseg_stamp;
  if (stored) j["assigned_from"] = fs::absolute(o.assign).string();
  j["images"] = report.images;
  j["clusters"] = report.clusters;
  j["fg_fraction"] = report.fg_fraction;
  if (report.voted_groups > 0) j["voted_groups"] = report.voted_groups;
  j["feature_seconds"] = report.feature_seconds;
  j["coseg_seconds"] = report.coseg_seconds;
  if (report.foreground_iou) j["foreground_iou"] = *report.foreground_iou;
  io::write_file_atomic(report_path, j.dump(2));
  if (o.contact_sheet > 0) {
    const size_t n = std::min(samples.size(), static_cast<size_t>(o.contact_sheet));
    const std::vector<data::Sample> shown(samples.begin(), samples.begin() + static_cast<std::ptrdiff_t>(n));
    const std::vector<at::Tensor> shown_labels(labels.begin(), labels.begin() + static_cast<std::ptrdiff_t>(n));
    io::write_png(cache / ("pseudo_labels" + suffix + ".png"), pseudo_label_sheet(shown, shown_labels));
  }
  return report;
}

at::Tensor read_label_maps(const std::vector<data::Sample>& samples, const fs::path& cache, int64_t size) {
  std::vector<at::Tensor> maps;
  for (const auto& s : samples) {
    const auto path = cache_path(cache, "labels", s.id, ".png");
    if (!fs::exists(path))
      throw data::DataError(path.string() + ": no pseudo-labels for sample " + s.id +
                            " (run lepard-prepare on this data)");
    try {
      maps.push_back(upsample_labels(io::read_indexed_png(path), size, size).to(at::kLong));
    } catch (const std::runtime_error& e) {
      throw data::DataError(e.what());
    }
  }
  return at::stack(maps);
}

std::optional<int64_t> recorded_label_clusters(const fs::path& folder) {
  auto count = [](const fs::path& file) -> std::optional<int64_t> {
    if (!fs::exists(file)) return std::nullopt;
    try {
      const auto j = nlohmann::json::parse(read_text(file));
      if (j.contains("clusters") && j["clusters"].is_number_integer()) return j["clusters"].get<int64_t>();
    } catch (const std::exception&) {
    }
    throw data::DataError(file.string() + ": no integer \"clusters\" (the number of part clusters of the labels)");
  };
  if (auto c = count(folder / "labels.json")) return c;
  const auto normal = folder.lexically_normal();  // "a/labels/" names its folder "labels" too
  const auto dir = normal.has_filename() ? normal : normal.parent_path();
  if (dir.filename() == "labels") return count(dir.parent_path() / "prepare.json");
  if (dir.parent_path().filename() == "labels")
    return count(dir.parent_path().parent_path() / ("prepare_" + dir.filename().string() + ".json"));
  return std::nullopt;
}

void check_label_clusters(const fs::path& folder, int64_t clusters, const std::string& flag, const std::string& model) {
  const auto recorded = recorded_label_clusters(folder);
  if (!recorded) {
    spdlog::warn(
        "{} {}: the number of clusters of these labels is not recorded (no labels.json beside them, "
        "and no lepard-prepare report for a cache's labels folder): a label above {} is refused, but labels of fewer "
        "clusters than {} was trained on cannot be told apart",
        flag, folder.string(), clusters, model);
    return;
  }
  if (*recorded != clusters)
    throw std::invalid_argument(flag + " " + folder.string() + ": labels of " + std::to_string(*recorded) +
                                " clusters, but " + model + " was trained on " + std::to_string(clusters) +
                                ": give the labels of the clusters it was trained on");
}

void write_label_clusters(const fs::path& folder, int64_t clusters, const fs::path& from,
                          const std::map<std::string, data::CropBox>& crops) {
  nlohmann::json j;
  j["clusters"] = clusters;
  j["from"] = fs::absolute(from).lexically_normal().string();
  if (!crops.empty()) {
    auto& c = j["crops"];
    for (const auto& [name, box] : crops) c[name] = {{"left", box.left}, {"top", box.top}, {"size", box.size}};
  }
  fs::create_directories(folder);
  io::write_file_atomic(folder / "labels.json", j.dump(2));
}

std::map<std::string, data::CropBox> recorded_label_crops(const fs::path& folder) {
  const auto file = folder / "labels.json";
  std::map<std::string, data::CropBox> out;
  if (!fs::exists(file)) return out;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_text(file));
  } catch (const std::exception& e) {
    throw data::DataError(file.string() + ": not JSON (" + e.what() + ")");
  }
  if (!j.is_object() || !j.contains("crops")) return out;
  const auto& crops = j["crops"];
  auto bad = [&](const std::string& what) {
    return data::DataError(file.string() + ": \"crops\" " + what +
                           " (each label map's crop: \"name\": {\"left\": L, \"top\": T, \"size\": S})");
  };
  if (!crops.is_object()) throw bad("is not an object");
  for (const auto& [name, box] : crops.items()) {
    if (!box.is_object()) throw bad("entry '" + name + "' is not an object");
    data::CropBox b;
    for (auto [key, field] : {std::pair<const char*, int64_t*>{"left", &b.left}, {"top", &b.top}, {"size", &b.size}}) {
      if (!box.contains(key) || !box[key].is_number_integer()) throw bad("entry '" + name + "' has no integer " + key);
      *field = box[key].get<int64_t>();
    }
    out[name] = b;
  }
  return out;
}

at::Tensor pseudo_label_sheet(const std::vector<data::Sample>& samples, const std::vector<at::Tensor>& labels,
                              int64_t columns) {
  std::vector<data::Sample> shown;
  for (size_t i = 0; i < samples.size(); ++i) {
    data::Sample s;
    s.image = samples[i].image;
    s.mask = samples[i].mask;  // its outline, where there is ground truth
    s.part_labels = upsample_labels(labels[i], s.image.size(0), s.image.size(1));
    shown.push_back(std::move(s));
  }
  return data::contact_sheet(shown, columns);
}

}  // namespace lepard::features
