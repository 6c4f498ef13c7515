#pragma once
// Typed values from text, one way everywhere: the command-line flags (apps/cli) and the YAML
// config schema (train/config) both parse numbers and print defaults with these.
#include <cstdint>
#include <optional>
#include <sstream>
#include <string>

namespace lepard::core {

namespace detail {
// All of `text` through `parse` (std::stoll or std::stod with a used-count), or nothing.
template <typename T, typename Parse>
std::optional<T> parse_all(const std::string& text, Parse parse) {
  size_t used = 0;
  T value{};
  try {
    value = parse(text, &used);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  if (text.empty() || used != text.size()) return std::nullopt;
  return value;
}
}  // namespace detail

// All of `text` as an integer (std::stoll's syntax), or nothing: "7x", "" and out-of-range
// values are refused rather than cut short.
inline std::optional<int64_t> parse_integer(const std::string& text) {
  return detail::parse_all<int64_t>(text, [](const std::string& t, size_t* used) { return std::stoll(t, used); });
}

// All of `text` as a double (std::stod's syntax: 1e-3, inf, nan), or nothing.
inline std::optional<double> parse_real(const std::string& text) {
  return detail::parse_all<double>(text, [](const std::string& t, size_t* used) { return std::stod(t, used); });
}

// The shortest of 15, 16 or 17 significant digits that reads back as the same double:
// 0.1667 prints as 0.1667, not 0.16669999999999999, and the round trip stays exact.
inline std::string format_double(double v) {
  std::string text;
  for (int digits : {15, 16, 17}) {
    std::ostringstream s;
    s.precision(digits);
    s << v;
    text = s.str();
    const auto back = parse_real(text);
    if (!back || *back == v) break;
  }
  return text;
}

}  // namespace lepard::core
