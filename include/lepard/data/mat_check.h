// A structural check of MATLAB v5 .mat files before libmatio reads them.
//
// libmatio trusts the dimensions a file declares: a corrupt header that declares a struct
// array of 10^8 elements makes it allocate gigabytes and spend minutes before it fails
// (fuzz finding fuzz/findings/pascal_mat_timeout_libmatio.mat). check_mat_v5 walks the
// file's elements (inflating miCOMPRESSED ones through zlib, to at most
// MatCheckLimits::max_inflated_bytes) and verifies that every array's declared element
// count is backed by the bytes that follow it: a cell of n elements needs n element tags,
// a struct of n elements and f fields needs n * f, a numeric or char array of n elements a
// data element of at least n values. It throws DataError naming the file, the byte offset
// and what is wrong; a file that passes cannot make libmatio allocate more than a small
// multiple of its (inflated) size.
//
// Only level-5 files (MATLAB 5 to 7, what scipy.io.savemat and Pascal-Part write) are
// accepted; a v7.3 (HDF5) file is an error that says so.
#pragma once

#include <cstdint>
#include <filesystem>

namespace lepard::data {

struct MatCheckLimits {
  int64_t max_inflated_bytes = int64_t{512} << 20;  // per miCOMPRESSED element
  int max_depth = 32;                               // nesting of cells and structs
};

void check_mat_v5(const std::filesystem::path& path, const MatCheckLimits& limits = {});

}  // namespace lepard::data
