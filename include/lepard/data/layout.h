#pragma once
// Dataset layouts, known in one place: which layout a folder holds, its categories, and the
// reader of one category. Every tool that reads a dataset (lepard-train, lepard-prepare,
// lepard-eval) goes through here. docs/data.md describes the layouts.
//
//   LASSIE   root/annotations/<category>.csv, root/images/<category>/input_<id>.png
//            (and root/gt/<category>/ from the synthetic menagerie); readers.h
//   Pascal   root/image_sets/<category>.txt, root/JPEGImages/, root/Annotations_Part/*.mat;
//            readers.h read_pascal_part
#include <lepard/data/sample.h>

#include <filesystem>
#include <string>
#include <vector>

namespace lepard::data {

enum class Layout { Lassie, Pascal };

// "lassie" or "pascal".
const char* layout_name(Layout layout);

// The layout named by `format` ("lassie", "pascal"), or for "auto" the one `root` holds
// (annotations/ means LASSIE, Annotations_Part/ Pascal-Part). Errors are
// std::invalid_argument (a setting to correct) naming `setting` (the flag or config key the
// format came from: "--format", "data.format") and the folder.
Layout resolve_layout(const std::filesystem::path& root, const std::string& format, const std::string& setting);

// The categories of a dataset, sorted: the stems of annotations/*.csv (LASSIE) or
// image_sets/*.txt (Pascal-Part). A missing folder is a DataError naming it.
std::vector<std::string> list_categories(const std::filesystem::path& root, Layout layout);

// Reads one category with the layout's reader (readers.h).
ReadResult read_category(const std::filesystem::path& root, Layout layout, const std::string& category,
                         const ReaderOptions& options = {});

}  // namespace lepard::data
