#include "cli.h"

#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>
#include <lepard/core/text.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <csignal>
#include <cstring>
#include <sstream>
#include <stdexcept>
#include <thread>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace lepard::cli {

Parser::Parser(std::string program, std::string summary) : program_(std::move(program)), summary_(std::move(summary)) {}

Parser& Parser::flag(const std::string& name, std::string* out, const std::string& help) {
  flags_.push_back(
      {name, help, out->empty() ? "" : *out, "TEXT", Kind::Value, [out](const std::string& v) { *out = v; }});
  return *this;
}

Parser& Parser::flag(const std::string& name, std::vector<std::string>* out, const std::string& help) {
  flags_.push_back({name, help, "", "TEXT...", Kind::Repeated, [out](const std::string& v) { out->push_back(v); }});
  return *this;
}

Parser& Parser::flag(const std::string& name, int64_t* out, const std::string& help) {
  flags_.push_back({name, help, std::to_string(*out), "INT", Kind::Value, [out, name](const std::string& v) {
                      const auto parsed = core::parse_integer(v);
                      if (!parsed) throw std::invalid_argument("--" + name + " expects an integer, got '" + v + "'");
                      *out = *parsed;
                    }});
  return *this;
}

Parser& Parser::flag(const std::string& name, double* out, const std::string& help) {
  flags_.push_back({name, help, core::format_double(*out), "NUMBER", Kind::Value, [out, name](const std::string& v) {
                      const auto parsed = core::parse_real(v);
                      if (!parsed) throw std::invalid_argument("--" + name + " expects a number, got '" + v + "'");
                      *out = *parsed;
                    }});
  return *this;
}

Parser& Parser::flag(const std::string& name, bool* out, const std::string& help) {
  flags_.push_back(
      {name, help, *out ? "on" : "off", "", Kind::Switch, [out](const std::string& v) { *out = v == "1"; }});
  return *this;
}

Parser& Parser::epilog(std::string text) {
  epilog_ = std::move(text);
  return *this;
}

std::string Parser::usage() const {
  std::ostringstream s;
  s << "usage: " << program_ << " [flags]\n\n" << summary_ << "\n\nflags:\n";
  for (const auto& f : flags_) {
    const bool is_switch = f.kind == Kind::Switch;
    std::string left = "  --" + f.name + (is_switch ? "" : " " + f.type);
    if (left.size() < 28) left.resize(28, ' ');
    s << left << " " << f.help;
    if (is_switch) {
      s << " (default " << f.default_text << "; --no-" << f.name << " to turn off)";
    } else if (!f.default_text.empty()) {
      s << " (default " << f.default_text << ")";
    }
    s << "\n";
  }
  std::string help = "  --help";
  help.resize(28, ' ');
  s << help << " print this help and exit\n";
  if (!epilog_.empty()) s << "\n" << epilog_ << "\n";
  return s.str();
}

namespace {
// CLI11's messages in lepard's words, naming the flag: "--count: 1 required INT missing"
// becomes "--count needs a value (INT)". A message of another shape (a later CLI11) is
// passed on as it is; it names the flag too.
std::string reworded(const CLI::ParseError& e, const CLI::App& app) {
  const std::string what = e.what();
  if (dynamic_cast<const CLI::ExtrasError*>(&e) != nullptr) {
    for (const auto& extra : app.remaining()) {
      if (extra.rfind("-", 0) == 0) return "unknown flag " + extra.substr(0, extra.find('='));
    }
    return what;
  }
  const auto colon = what.find(": ");
  if (what.rfind("--", 0) == 0 && colon != std::string::npos && what.find(" missing", colon) != std::string::npos) {
    const auto required = what.find(" required ", colon);
    const std::string type =
        required == std::string::npos ? "" : what.substr(required + 10, what.find(" missing", colon) - required - 10);
    return what.substr(0, colon) + " needs a value" + (type.empty() ? "" : " (" + type + ")");
  }
  const auto override_at = what.find(" was given a disallowed flag override");
  if (override_at != std::string::npos) {
    std::string name = what.substr(0, override_at);
    if (name.rfind("--", 0) != 0) name = "--" + name;
    return name + " is a switch and takes no value";
  }
  return what;
}
}  // namespace

std::vector<std::string> Parser::parse_or_throw(const std::vector<std::string>& args, bool* help_requested) const {
  *help_requested = false;
  CLI::App app{summary_, program_};
  app.set_help_flag("-h,--help", "print this help and exit");
  std::vector<std::string> positional;
  for (const auto& f : flags_) {
    const auto& set = f.set;
    switch (f.kind) {
      case Kind::Switch:
        app.add_flag_function(
               "--" + f.name + ",!--no-" + f.name, [set](int64_t count) { set(count > 0 ? "1" : "0"); }, f.help)
            ->disable_flag_override()
            ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
        break;
      case Kind::Repeated:
        // One value per occurrence, every occurrence kept in order: --set a=1 --set b=2.
        app.add_option_function<std::vector<std::string>>(
               "--" + f.name,
               [set](const std::vector<std::string>& values) {
                 for (const auto& v : values) set(v);
               },
               f.help)
            ->type_name(f.type)
            ->allow_extra_args(false);
        break;
      case Kind::Value:
        // The last occurrence wins, as in most tools; the value is checked by `set`, whose
        // message names the flag.
        app.add_option_function<std::string>("--" + f.name, set, f.help)
            ->type_name(f.type)
            ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
        break;
    }
  }
  app.add_option("arguments", positional, "positional arguments");
  // CLI11 reads argv[1..] in reverse order from a vector.
  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    *help_requested = true;
    return {};
  } catch (const CLI::ParseError& e) {
    throw std::invalid_argument(reworded(e, app));
  }
  return positional;
}

std::vector<std::string> Parser::parse(int argc, char** argv) const {
  std::vector<std::string> args(argv + 1, argv + argc);
  bool help = false;
  try {
    auto positional = parse_or_throw(args, &help);
    if (help) {
      std::fputs(usage().c_str(), stdout);
      std::exit(0);
    }
    return positional;
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "%s: %s\nRun '%s --help' for the list of flags.\n", program_.c_str(), e.what(),
                 program_.c_str());
    std::exit(2);
  }
}

int64_t default_threads() { return static_cast<int64_t>(std::max(1u, std::thread::hardware_concurrency())); }

void init_logging() {
  static const auto logger = [] {
    auto l = spdlog::stderr_color_mt("lepard");
    spdlog::set_default_logger(l);
    return l;
  }();
  (void)logger;
}

std::string format_duration(double seconds) {
  if (!(seconds >= 0) || seconds > 1e7) return "?";
  const auto s = static_cast<int64_t>(seconds + 0.5);
  char buf[32];
  if (s < 60)
    std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(s));
  else if (s < 3600)
    std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  else
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(s / 3600),
                  static_cast<long long>(s % 3600 / 60));
  return buf;
}

std::string Progress::line(const std::string& stage, int64_t done, int64_t total, double seconds,
                           const std::string& detail, bool bar) {
  const double rate = seconds > 0 ? static_cast<double>(done) / seconds : 0.0;
  std::string when;
  if (done >= total) {
    when = ", " + format_duration(seconds);
  } else if (done > 0 && seconds > 0) {
    when = ", " + format_duration(static_cast<double>(total - done) / rate) + " left";
  }
  char head[64];
  std::snprintf(head, sizeof head, " %lld/%lld ", static_cast<long long>(done), static_cast<long long>(total));
  char tail[64];
  std::snprintf(tail, sizeof tail, "%.1f/s", rate);
  std::string out = stage + head;
  if (bar) {
    const int64_t width = 24, filled = total > 0 ? std::min(done, total) * width / total : width;
    out += "[" + std::string(static_cast<size_t>(filled), '=') + std::string(static_cast<size_t>(width - filled), ' ') +
           "] " + tail + when;
  } else {
    out += "(" + std::string(tail) + when + ")";
  }
  return detail.empty() ? out : out + " " + detail;
}

void Progress::update(const std::string& stage, int64_t done, int64_t total, const std::string& detail) {
  const std::lock_guard<std::mutex> lock(mutex_);
  const double now = std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  if (stage != stage_) {
    stage_ = stage;
    start_ = now;
    last_decile_ = -1;
  }
  if (::isatty(2)) {
    // Clear to the end of the line: the previous text may have been longer.
    std::fprintf(stderr, "\r%s\033[K%s", line(stage, done, total, now - start_, detail, true).c_str(),
                 done >= total ? "\n" : "");
    std::fflush(stderr);
    return;
  }
  const int64_t decile = total > 0 ? done * 10 / total : 10;
  if (decile != last_decile_) {
    last_decile_ = decile;
    std::fprintf(stderr, "%s\n", line(stage, done, total, now - start_, detail, false).c_str());
  }
}

void tune_runtime(char** argv) {
  // Over the file-size limit (ulimit -f), a write fails with EFBIG instead of the process
  // being killed by SIGXFSZ mid-write: the atomic writer then removes its temporary file and
  // the error names it, and the previous checkpoint stays.
  std::signal(SIGXFSZ, SIG_IGN);
  if (std::getenv("OMP_WAIT_POLICY") == nullptr && std::getenv("GOMP_SPINCOUNT") == nullptr &&
      ::setenv("OMP_WAIT_POLICY", "passive", 1) == 0) {
    ::execv("/proc/self/exe", argv);
    // exec failed (no /proc?): go on with the busy-waiting default.
  }
#if defined(__GLIBC__)
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  if (tunables == nullptr || std::strstr(tunables, "glibc.malloc.") == nullptr) {
    ::mallopt(M_MMAP_THRESHOLD, 32 << 20);
    ::mallopt(M_TRIM_THRESHOLD, 1 << 30);
  }
#endif
}

void set_threads(int64_t n) {
  if (n < 1) throw std::invalid_argument("--threads must be at least 1, got " + std::to_string(n));
  at::set_num_threads(static_cast<int>(n));
  // OpenBLAS (Debian's LibTorch) keeps a pool of its own, one thread per core, whose idle
  // workers spin on sched_yield between matrix products: at --threads 1 a second thread
  // still used most of a core. Its size follows --threads where the library is OpenBLAS
  // (looked up at run time: a LibTorch with MKL has no such symbol).
  using SetThreads = void (*)(int);
  if (auto* f = reinterpret_cast<SetThreads>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) f(static_cast<int>(n));
}

}  // namespace lepard::cli
