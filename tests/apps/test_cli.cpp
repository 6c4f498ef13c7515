// The flag parser every tool uses.
#include "cli/cli.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace lepard::cli {
namespace {

struct Flags {
  std::string out = "runs/x";
  int64_t count = 3;
  double sigma = 1e-4;
  bool verbose = false;
  std::vector<std::string> sets;
  Parser parser{"tool", "does things"};
  Flags() {
    parser.flag("out", &out, "output folder")
        .flag("count", &count, "how many")
        .flag("sigma", &sigma, "width")
        .flag("verbose", &verbose, "talk more")
        .flag("set", &sets, "key=value, repeatable");
  }
};

TEST(Cli, ParsesEveryFormAndKeepsDefaults) {
  Flags f;
  bool help = false;
  const auto pos = f.parser.parse_or_throw({"--count", "7", "--sigma=0.5", "--verbose", "input.png"}, &help);
  EXPECT_FALSE(help);
  EXPECT_EQ(f.count, 7);
  EXPECT_DOUBLE_EQ(f.sigma, 0.5);
  EXPECT_TRUE(f.verbose);
  EXPECT_EQ(f.out, "runs/x");
  EXPECT_EQ(pos, std::vector<std::string>{"input.png"});
  f.parser.parse_or_throw({"--no-verbose"}, &help);
  EXPECT_FALSE(f.verbose);
  // A repeatable flag takes one value per occurrence (the next word stays positional); a
  // value flag given twice keeps the last; a negative number is a value, not a flag.
  const auto rest = f.parser.parse_or_throw(
      {"--set", "a=1", "--set=b=2", "c.png", "--count", "1", "--count", "-4", "--sigma", "-1e-3"}, &help);
  EXPECT_EQ(f.sets, (std::vector<std::string>{"a=1", "b=2"}));
  EXPECT_EQ(rest, std::vector<std::string>{"c.png"});
  EXPECT_EQ(f.count, -4);
  EXPECT_DOUBLE_EQ(f.sigma, -1e-3);
  f.parser.parse_or_throw({"-h"}, &help);
  EXPECT_TRUE(help);
}

TEST(Cli, ErrorsNameTheFlag) {
  Flags f;
  bool help = false;
  auto message = [&](std::vector<std::string> args) {
    try {
      f.parser.parse_or_throw(args, &help);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message({"--bogus", "1"}), "unknown flag --bogus");
  EXPECT_EQ(message({"--count", "7x"}), "--count expects an integer, got '7x'");
  EXPECT_EQ(message({"--sigma="}), "--sigma needs a value (NUMBER)");
  EXPECT_EQ(message({"--sigma=1e-3x"}), "--sigma expects a number, got '1e-3x'");
  EXPECT_EQ(message({"--no-out"}), "unknown flag --no-out");
  EXPECT_EQ(message({"--count"}), "--count needs a value (INT)");
  EXPECT_EQ(message({"--verbose=1"}), "--verbose is a switch and takes no value");
  EXPECT_THROW(set_threads(0), std::invalid_argument);
}

// --threads also sizes OpenBLAS's own pool where the BLAS is OpenBLAS (Debian's LibTorch);
// elsewhere (MKL) there is nothing to check.
TEST(Cli, SetThreadsSizesOpenBlasToo) {
  using GetThreads = int (*)();
  auto* get = reinterpret_cast<GetThreads>(::dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  if (get == nullptr) GTEST_SKIP() << "the BLAS is not OpenBLAS";
  set_threads(1);
  EXPECT_EQ(get(), 1);
  EXPECT_EQ(at::get_num_threads(), 1);
  set_threads(2);
  EXPECT_EQ(get(), 2);
  set_threads(1);
  EXPECT_EQ(get(), 1);
}

TEST(Cli, HelpListsFlagsWithDefaults) {
  Flags f;
  bool help = false;
  f.parser.parse_or_throw({"--count", "2", "--help"}, &help);
  EXPECT_TRUE(help);
  const auto u = f.parser.usage();
  EXPECT_NE(u.find("--out TEXT"), std::string::npos);
  EXPECT_NE(u.find("(default runs/x)"), std::string::npos);
  EXPECT_NE(u.find("(default 3)"), std::string::npos);  // registered defaults, not parsed values
  EXPECT_NE(u.find("--no-verbose"), std::string::npos);
}

TEST(Cli, ProgressLinesSayTheRateAndTheTimeLeft) {
  EXPECT_EQ(format_duration(0.4), "0s");
  EXPECT_EQ(format_duration(45), "45s");
  EXPECT_EQ(format_duration(192), "3m12s");
  EXPECT_EQ(format_duration(7500), "2h05m");
  // 30 of 120 in 15 s: 2 per second, 90 left -> 45 s.
  EXPECT_EQ(Progress::line("features", 30, 120, 15.0, "", false), "features 30/120 (2.0/s, 45s left)");
  EXPECT_EQ(Progress::line("train steps", 30, 120, 15.0, "loss 0.5", true),
            "train steps 30/120 [======                  ] 2.0/s, 45s left loss 0.5");
  EXPECT_EQ(Progress::line("infer", 120, 120, 60.0, "", false), "infer 120/120 (2.0/s, 1m00s)");
  EXPECT_EQ(Progress::line("infer", 0, 120, 0.0, "", false), "infer 0/120 (0.0/s)");
}

}  // namespace
}  // namespace lepard::cli
