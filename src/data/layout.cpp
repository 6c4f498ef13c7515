#include <lepard/data/layout.h>
#include <lepard/data/readers.h>

#include <algorithm>
#include <stdexcept>

namespace lepard::data {

namespace fs = std::filesystem;

const char* layout_name(Layout layout) { return layout == Layout::Lassie ? "lassie" : "pascal"; }

Layout resolve_layout(const fs::path& root, const std::string& format, const std::string& setting) {
  if (format == "lassie") return Layout::Lassie;
  if (format == "pascal") return Layout::Pascal;
  if (format != "auto") {
    throw std::invalid_argument(setting + ": unknown dataset format '" + format +
                                "' (expected auto, lassie or pascal)");
  }
  if (!fs::is_directory(root)) throw std::invalid_argument(root.string() + ": the dataset folder does not exist");
  if (fs::exists(root / "annotations")) return Layout::Lassie;
  if (fs::exists(root / "Annotations_Part")) return Layout::Pascal;
  throw std::invalid_argument(root.string() +
                              " has neither annotations/ (LASSIE layout) nor Annotations_Part/ (Pascal-Part); set " +
                              setting + " to lassie or pascal");
}

std::vector<std::string> list_categories(const fs::path& root, Layout layout) {
  const fs::path folder = layout == Layout::Lassie ? root / "annotations" : root / "image_sets";
  const std::string extension = layout == Layout::Lassie ? ".csv" : ".txt";
  if (!fs::is_directory(folder)) {
    throw DataError(folder.string() + ": no such folder (the " + layout_name(layout) +
                    " layout lists its categories there)");
  }
  std::vector<std::string> out;
  for (const auto& entry : fs::directory_iterator(folder)) {
    if (entry.path().extension() == extension) out.push_back(entry.path().stem().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

ReadResult read_category(const fs::path& root, Layout layout, const std::string& category,
                         const ReaderOptions& options) {
  return layout == Layout::Lassie ? read_lassie_web_images(root, category, options)
                                  : read_pascal_part(root, category, options);
}

}  // namespace lepard::data
