// .npy files against the real numpy, both ways: files written here are loaded and checked
// by numpy, and files numpy writes (C and Fortran order, several dtypes) are read here.
#include <lepard/io/atomic_file.h>
#include <lepard/io/npy.h>

#include "test_support.h"

#include <ATen/TensorOperators.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/tensor.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

namespace lepard::io {
namespace {

int python(const std::string& code) {
  const std::string cmd = std::string(LEPARD_PYTHON) + " -c \"" + code + "\"";
  return std::system(cmd.c_str());
}

TEST(Npy, NumpyReadsWhatWeWrite) {
  const auto dir = testing::temp_dir("npy_write");
  write_npy(dir / "f.npy", (at::arange(24, at::kFloat) / 4).view({2, 3, 4}));
  write_npy(dir / "u.npy", at::arange(10, at::kLong).to(at::kByte));
  write_npy(dir / "s.npy", at::tensor({7L}).view({1}));
  const std::string d = dir.string();
  EXPECT_EQ(python("import numpy as np; a = np.load('" + d +
                   "/f.npy'); "
                   "assert a.dtype == np.float32 and a.shape == (2, 3, 4), a.shape; "
                   "assert (a == np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 4).all(); "
                   "u = np.load('" +
                   d +
                   "/u.npy'); assert u.dtype == np.uint8 and list(u) == list(range(10)); "
                   "s = np.load('" +
                   d + "/s.npy'); assert s.dtype == np.int64 and s.shape == (1,) and s[0] == 7"),
            0);
}

TEST(Npy, WeReadWhatNumpyWrites) {
  const auto dir = testing::temp_dir("npy_read");
  const std::string d = dir.string();
  ASSERT_EQ(python("import numpy as np; a = np.arange(60, dtype=np.float64).reshape(3, 4, 5); "
                   "np.save('" +
                   d + "/c.npy', a); np.save('" + d +
                   "/f.npy', np.asfortranarray(a)); "
                   "np.save('" +
                   d +
                   "/i.npy', np.array([[1, -2], [3, 4]], dtype=np.int32)); "
                   "np.save('" +
                   d +
                   "/b.npy', np.array([True, False, True])); "
                   "np.save('" +
                   d +
                   "/big.npy', np.arange(3, dtype='>f4')); "
                   "np.save('" +
                   d +
                   "/c64.npy', np.arange(3, dtype=np.complex64)); "
                   "np.save('" +
                   d + "/empty.npy', np.zeros((0, 4), dtype=np.uint8))"),
            0);
  const auto expected = at::arange(60, at::kDouble).view({3, 4, 5});
  EXPECT_TRUE(read_npy(dir / "c.npy").equal(expected));
  EXPECT_TRUE(read_npy(dir / "f.npy").equal(expected));
  EXPECT_TRUE(read_npy(dir / "i.npy").equal(at::tensor({1, -2, 3, 4}, at::kInt).view({2, 2})));
  EXPECT_EQ(read_npy(dir / "b.npy").sum().item<int64_t>(), 2);
  // An empty array (fuzz finding of fuzz_npy under UBSan: memcpy to the null data pointer of
  // an empty tensor) reads as an empty tensor of its shape.
  EXPECT_EQ(read_npy(dir / "empty.npy").sizes(), (at::IntArrayRef{0, 4}));
  auto message = [&](const char* name) {
    try {
      read_npy(dir / name);
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message("big.npy").find("big-endian"), std::string::npos);
  EXPECT_NE(message("c64.npy").find("unsupported dtype 'c8'"), std::string::npos);
  write_file_atomic(dir / "x.npy", "\x93NUMPY");
  EXPECT_NE(message("x.npy").find("x.npy"), std::string::npos);
  // A truncated file names the byte counts.
  write_npy(dir / "t.npy", at::arange(100, at::kFloat));
  std::ifstream in(dir / "t.npy", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  write_file_atomic(dir / "t.npy", bytes.substr(0, bytes.size() - 40));
  EXPECT_NE(message("t.npy").find("the shape (100,) needs 400"), std::string::npos) << message("t.npy");
  // Fuzz finding (fuzz_npy, out of memory): a header whose shape declares terabytes over a few
  // bytes of data is refused before anything is allocated; so is a dimension too long to be one.
  auto npy = [&](const std::string& name, const std::string& shape) {
    std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + shape + "), }";
    header.resize(117, ' ');
    header += "\n";
    write_file_atomic(dir / name, std::string("\x93NUMPY\x01\x00", 8) + std::string(1, static_cast<char>(118)) +
                                      std::string(1, '\0') + header + std::string(16, '\x01'));
  };
  npy("huge.npy", "100000000000, 100000");
  EXPECT_NE(message("huge.npy").find("data is 16 bytes, the shape (100000000000, 100000) needs 40000000000000000"),
            std::string::npos)
      << message("huge.npy");
  npy("zero_then_huge.npy", "0, 99999999999999999999");
  EXPECT_NE(message("zero_then_huge.npy").find("a dimension of 20 digits"), std::string::npos)
      << message("zero_then_huge.npy");
  npy("four.npy", "2, 2");
  EXPECT_EQ(read_npy(dir / "four.npy").sizes(), (at::IntArrayRef{2, 2}));
}

}  // namespace
}  // namespace lepard::io
