#pragma once
// The declarative flag list shared by lepard's tools, parsed by CLI11 (third_party/README.md).
// Every flag has a type, a default (the variable's value when registered) and a help line;
// --help prints them all with the defaults and the tool's examples. Unknown flags, missing
// and malformed values are errors that name the flag (exit code 2 from parse()).

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

namespace lepard::cli {

class Parser {
 public:
  Parser(std::string program, std::string summary);

  // --name VALUE or --name=VALUE.
  Parser& flag(const std::string& name, std::string* out, const std::string& help);
  // A repeatable flag: every occurrence appends its value.
  Parser& flag(const std::string& name, std::vector<std::string>* out, const std::string& help);
  Parser& flag(const std::string& name, int64_t* out, const std::string& help);
  Parser& flag(const std::string& name, double* out, const std::string& help);
  // A switch: --name sets it, --no-name clears it.
  Parser& flag(const std::string& name, bool* out, const std::string& help);

  // Text printed after the flags by --help (examples, notes).
  Parser& epilog(std::string text);

  // Parses argv. --help prints usage() to stdout and exits 0; an error prints it with a
  // hint to stderr and exits 2. Returns the positional arguments.
  std::vector<std::string> parse(int argc, char** argv) const;

  // Same as parse() but throws std::invalid_argument instead of exiting (for tests).
  std::vector<std::string> parse_or_throw(const std::vector<std::string>& args, bool* help_requested) const;

  std::string usage() const;

 private:
  enum class Kind { Value, Repeated, Switch };
  struct Flag {
    std::string name, help, default_text, type;
    Kind kind = Kind::Value;
    std::function<void(const std::string&)> set;
  };

  std::string program_, summary_, epilog_;
  std::vector<Flag> flags_;
};

// A progress line on stderr: "\r<stage> 37/200 [=====     ] 12.3/s, 13s left"; on a
// terminal it redraws, elsewhere (logs, CI) it prints a line at every 10%. Thread-safe: the
// menagerie's workers report from several threads.
class Progress {
 public:
  // `detail` (e.g. the current loss) is printed after the rate; changing it does not
  // restart the stage's clock.
  void update(const std::string& stage, int64_t done, int64_t total, const std::string& detail = "");

  // The text of one update, `seconds` after the stage began: with a bar (terminal) or as a
  // log line. Time left is the remaining count at the stage's mean rate so far.
  static std::string line(const std::string& stage, int64_t done, int64_t total, double seconds,
                          const std::string& detail, bool bar);

 private:
  std::mutex mutex_;
  std::string stage_;
  double start_ = 0;
  int64_t last_decile_ = -1;
};

// A duration as people read it: "45s", "3m12s", "2h05m".
std::string format_duration(double seconds);

// The number of cores: the default of every --threads flag.
int64_t default_threads();

// Sends log messages (spdlog's default logger) to stderr, keeping stdout for results.
void init_logging();

// Call first in main(). Two process-wide settings that LibTorch on the CPU needs:
//
// OpenMP: when the environment sets neither OMP_WAIT_POLICY nor GOMP_SPINCOUNT,
// re-executes the program with OMP_WAIT_POLICY=passive. Why: with Debian's LibTorch the
// BLAS is OpenBLAS with its own threads, and OpenMP's threads busy-wait after every
// parallel ATen operation; the two pools then fight over the cores and matrix products
// run 2-3x slower (docs/BENCHMARKS.md, "ViT"). libgomp reads the policy only at start-up,
// hence the re-exec. Set OMP_WAIT_POLICY yourself (to anything) to keep your own choice.
//
// malloc (glibc): keeps freed memory in the process (trim threshold 1 GiB, mmap threshold
// 32 MiB) instead of handing it back to the kernel after every step. A training step
// allocates and frees the same few hundred MB of tensors; with glibc's defaults the pages
// went back and were faulted in again each time, and one step in three was page faults
// (docs/BENCHMARKS.md, "What a training step costs"). GLIBC_TUNABLES with a
// glibc.malloc setting in the environment keeps your own choice.
void tune_runtime(char** argv);

// Sets LibTorch's intra-op threads (LibTorch starts with one), and OpenBLAS's own pool to
// the same number where the BLAS is OpenBLAS (Debian's LibTorch; found at run time), whose
// idle workers otherwise spin on sched_yield: at --threads 1 a second thread used most of a
// core (docs/BENCHMARKS.md, "Two processes of one thread"). Throws std::invalid_argument
// naming --threads when n < 1.
void set_threads(int64_t n);

}  // namespace lepard::cli
