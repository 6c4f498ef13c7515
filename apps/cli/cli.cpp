#include "cli.h"

#include <ATen/Parallel.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
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

namespace {
std::string format_double(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}
}  // namespace

Parser::Parser(std::string program, std::string summary) : program_(std::move(program)), summary_(std::move(summary)) {}

Parser& Parser::flag(const std::string& name, std::string* out, const std::string& help) {
  flags_.push_back({name, help, out->empty() ? "" : *out, "TEXT", false, [out](const std::string& v) { *out = v; }});
  return *this;
}

namespace {
// Parses all of `v` as a T (std::stoll or std::stod), or throws naming the flag.
template <typename T, typename Parse>
T parse_number(const std::string& name, const std::string& v, const char* what, Parse parse) {
  size_t used = 0;
  T parsed{};
  try {
    parsed = parse(v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (v.empty() || used != v.size()) throw std::invalid_argument("--" + name + " expects " + what + ", got '" + v + "'");
  return parsed;
}
}  // namespace

Parser& Parser::flag(const std::string& name, std::vector<std::string>* out, const std::string& help) {
  flags_.push_back({name, help, "", "TEXT...", false, [out](const std::string& v) { out->push_back(v); }});
  return *this;
}

Parser& Parser::flag(const std::string& name, int64_t* out, const std::string& help) {
  flags_.push_back({name, help, std::to_string(*out), "INT", false, [out, name](const std::string& v) {
                      *out = parse_number<int64_t>(name, v, "an integer",
                                                   [](const std::string& s, size_t* n) { return std::stoll(s, n); });
                    }});
  return *this;
}

Parser& Parser::flag(const std::string& name, double* out, const std::string& help) {
  flags_.push_back({name, help, format_double(*out), "NUMBER", false, [out, name](const std::string& v) {
                      *out = parse_number<double>(name, v, "a number",
                                                  [](const std::string& s, size_t* n) { return std::stod(s, n); });
                    }});
  return *this;
}

Parser& Parser::flag(const std::string& name, bool* out, const std::string& help) {
  flags_.push_back({name, help, *out ? "on" : "off", "", true, [out](const std::string& v) { *out = v == "1"; }});
  return *this;
}

Parser& Parser::epilog(std::string text) {
  epilog_ = std::move(text);
  return *this;
}

const Parser::Flag* Parser::find(const std::string& name) const {
  for (const auto& f : flags_) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

std::string Parser::usage() const {
  std::ostringstream s;
  s << "usage: " << program_ << " [flags]\n\n" << summary_ << "\n\nflags:\n";
  for (const auto& f : flags_) {
    std::string left = "  --" + f.name + (f.is_switch ? "" : " " + f.type);
    if (left.size() < 28) left.resize(28, ' ');
    s << left << " " << f.help;
    if (f.is_switch) {
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

std::vector<std::string> Parser::parse_or_throw(const std::vector<std::string>& args, bool* help_requested) const {
  std::vector<std::string> positional;
  *help_requested = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--help" || arg == "-h") {
      *help_requested = true;
      return positional;
    }
    if (arg.rfind("--", 0) != 0) {
      positional.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2), value;
    const auto eq = name.find('=');
    const bool has_value = eq != std::string::npos;
    if (has_value) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    const Flag* f = find(name);
    if (!f && !has_value && name.rfind("no-", 0) == 0) {
      const Flag* sw = find(name.substr(3));
      if (sw && sw->is_switch) {
        sw->set("0");
        continue;
      }
    }
    if (!f) throw std::invalid_argument("unknown flag --" + name);
    if (f->is_switch) {
      if (has_value) throw std::invalid_argument("--" + name + " is a switch and takes no value");
      f->set("1");
      continue;
    }
    if (!has_value) {
      if (i + 1 >= args.size()) throw std::invalid_argument("--" + name + " needs a value (" + f->type + ")");
      value = args[++i];
    }
    f->set(value);
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
  if (s < 60) std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(s));
  else if (s < 3600) std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  else std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(s / 3600), static_cast<long long>(s % 3600 / 60));
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
}

}  // namespace lepard::cli
