// The synthetic menagerie (include/lepard/data/menagerie.h).
#include <lepard/core/hash.h>
#include <lepard/core/surface_grid.h>
#include <lepard/data/keypoints.h>
#include <lepard/data/menagerie.h>

#include <lepard/io/atomic_file.h>
#include <lepard/io/image_io.h>
#include <lepard/io/npy.h>
#include <lepard/render/hard_rasterize.h>

#include <ATen/Parallel.h>
#include <ATen/TensorOperators.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/zeros.h>
#include <c10/util/Exception.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace lepard::data {

namespace fs = std::filesystem;

namespace {

// --- Randomness that is the same with every standard library -------------------------
using core::splitmix64;

uint64_t mix(uint64_t a, uint64_t b) { return splitmix64(a ^ splitmix64(b + 0x632be59bd9b4e019ull)); }
// FNV-1a of a name: std::hash differs between standard libraries, this does not.
uint64_t name_hash(const std::string& name) { return core::fnv1a(name); }

struct Rng {
  uint64_t state;
  explicit Rng(uint64_t seed) : state(splitmix64(seed)) {}
  uint64_t next() { return state = splitmix64(state); }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  double uniform(double a, double b) { return a + (b - a) * uniform(); }
  double normal() {
    const double u1 = std::max(uniform(), 1e-300), u2 = uniform();
    return std::sqrt(-2 * std::log(u1)) * std::cos(2 * M_PI * u2);
  }
  double degrees(double a, double b) { return uniform(a, b) * M_PI / 180.0; }
};

// --- Small vector algebra ---------------------------------------------------------------
struct V3 {
  double x = 0, y = 0, z = 0;
};
V3 operator+(V3 a, V3 b) { return {a.x + b.x, a.y + b.y, a.z + b.z}; }
V3 operator-(V3 a, V3 b) { return {a.x - b.x, a.y - b.y, a.z - b.z}; }
V3 operator*(double s, V3 a) { return {s * a.x, s * a.y, s * a.z}; }
double dot(V3 a, V3 b) { return a.x * b.x + a.y * b.y + a.z * b.z; }
V3 cross(V3 a, V3 b) { return {a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x}; }
double norm(V3 a) { return std::sqrt(dot(a, a)); }
V3 unit(V3 a) { return (1.0 / std::max(norm(a), 1e-12)) * a; }
// Direction in the x-y plane at `angle` from +x (object frame: x forward, y up, z left).
V3 planar(double angle) { return {std::cos(angle), std::sin(angle), 0}; }

// --- Animals as tubes -----------------------------------------------------------------
constexpr int64_t kRings = 10, kSegments = 12;  // every tube: 122 vertices, 240 faces

struct Tube {
  int64_t label;               // LASSIE part label
  std::vector<V3> path;        // at least two points
  std::vector<double> radius;  // one per path point
  double noise = 0.08;         // relative amplitude of the radial noise
};

struct Keypoint3 {
  int64_t slot, label;
  V3 p;
  double tolerance;  // depth tolerance of the visibility test (about the part's radius)
};

enum class Texture { Plain, Stripes, Patches, Wool, Tiger, Tuxedo };

struct Preset {
  std::string name;
  bool biped = false;
  double body_len, body_rad, leg_len, leg_rad, neck_len, neck_rad, neck_angle, head_len, head_rad, tail_len, tail_rad,
      ear_len, ear_rad, trunk_len = 0;
  Texture texture;
  V3 colour, second;  // RGB in [0, 1]
};

const std::vector<Preset>& presets() {
  // Lengths in body lengths of a horse. Characteristic proportions: a giraffe's neck and
  // legs, an elephant's trunk and thick legs, a tiger's long tail, the upright bipeds.
  static const std::vector<Preset> p = {
      {"horse",
       false,
       1.0,
       0.22,
       0.75,
       0.055,
       0.45,
       0.11,
       55,
       0.36,
       0.085,
       0.45,
       0.045,
       0.09,
       0.025,
       0,
       Texture::Plain,
       {0.45, 0.30, 0.18},
       {0.25, 0.16, 0.10}},
      {"cow",
       false,
       1.1,
       0.30,
       0.60,
       0.075,
       0.30,
       0.15,
       25,
       0.32,
       0.11,
       0.50,
       0.03,
       0.08,
       0.03,
       0,
       Texture::Patches,
       {0.92, 0.90, 0.86},
       {0.12, 0.10, 0.10}},
      {"sheep",
       false,
       0.9,
       0.30,
       0.45,
       0.045,
       0.20,
       0.13,
       30,
       0.25,
       0.09,
       0.12,
       0.05,
       0.07,
       0.025,
       0,
       Texture::Wool,
       {0.88, 0.85, 0.76},
       {0.30, 0.27, 0.24}},
      {"zebra",
       false,
       1.0,
       0.23,
       0.70,
       0.055,
       0.42,
       0.11,
       50,
       0.34,
       0.085,
       0.42,
       0.04,
       0.10,
       0.025,
       0,
       Texture::Stripes,
       {0.95, 0.95, 0.93},
       {0.07, 0.07, 0.08}},
      {"tiger",
       false,
       1.1,
       0.20,
       0.50,
       0.065,
       0.20,
       0.14,
       15,
       0.28,
       0.12,
       0.90,
       0.04,
       0.05,
       0.03,
       0,
       Texture::Tiger,
       {0.90, 0.52, 0.15},
       {0.08, 0.06, 0.05}},
      {"giraffe",
       false,
       0.9,
       0.22,
       1.10,
       0.05,
       1.10,
       0.07,
       68,
       0.30,
       0.07,
       0.40,
       0.025,
       0.07,
       0.02,
       0,
       Texture::Patches,
       {0.88, 0.72, 0.42},
       {0.45, 0.25, 0.10}},
      {"elephant",
       false,
       1.2,
       0.42,
       0.70,
       0.13,
       0.15,
       0.30,
       10,
       0.40,
       0.25,
       0.45,
       0.025,
       0.10,
       0.22,
       0.85,
       Texture::Plain,
       {0.50, 0.48, 0.46},
       {0.38, 0.36, 0.35}},
      {"kangaroo",
       true,
       0.70,
       0.18,
       0.80,
       0.07,
       0.15,
       0.08,
       70,
       0.22,
       0.07,
       0.80,
       0.07,
       0.09,
       0.025,
       0,
       Texture::Plain,
       {0.62, 0.44, 0.30},
       {0.82, 0.70, 0.56}},
      {"penguin",
       true,
       0.80,
       0.28,
       0.16,
       0.04,
       0.08,
       0.16,
       80,
       0.20,
       0.15,
       0.12,
       0.05,
       0.0,
       0.0,
       0,
       Texture::Tuxedo,
       {0.06, 0.06, 0.08},
       {0.95, 0.95, 0.92}},
  };
  return p;
}

const Preset& preset(const std::string& category) {
  for (const auto& p : presets()) {
    if (p.name == category) return p;
  }
  std::string known;
  for (const auto& p : presets()) known += (known.empty() ? "" : ", ") + p.name;
  throw std::invalid_argument("unknown category '" + category + "' (known: " + known + ")");
}

struct Animal {
  std::vector<Tube> tubes;
  std::vector<Keypoint3> keypoints;
  nlohmann::json articulation;
};

// A leg from `top`: upper part swung by `swing` from straight down, lower bent by `bend`.
void add_leg(Animal& a, V3 top, double upper, double lower, double radius, double swing, double bend,
             int64_t upper_label, int64_t lower_label, int64_t knee_slot, int64_t ankle_slot) {
  const V3 knee = top + upper * planar(-M_PI / 2 + swing);
  const V3 ankle = knee + lower * planar(-M_PI / 2 + swing + bend);
  a.tubes.push_back({upper_label, {top, 0.5 * (top + knee), knee}, {1.5 * radius, 1.25 * radius, radius}, 0.05});
  a.tubes.push_back({lower_label, {knee, ankle}, {radius, 0.8 * radius}, 0.04});
  a.keypoints.push_back({knee_slot, upper_label, knee, 1.6 * radius});
  a.keypoints.push_back({ankle_slot, lower_label, ankle, 1.6 * radius});
}

// Head (with eyes, ears, muzzle) from `base` along direction `dir`.
void add_head(Animal& a, const Preset& p, V3 base, V3 dir, Rng& rng) {
  const V3 tip = base + p.head_len * dir;
  a.tubes.push_back({2, {base, 0.5 * (base + tip), tip}, {p.head_rad, 0.95 * p.head_rad, 0.65 * p.head_rad}, 0.04});
  const V3 side = unit(cross(dir, V3{0, 1, 0}));  // towards -z: the animal's right when facing +x
  const V3 up = unit(cross(side, dir));
  const V3 eye_at = base + (0.45 * p.head_len) * dir + (0.45 * p.head_rad) * up;
  const double r_eye = 0.9 * p.head_rad;
  a.keypoints.push_back({keypoint_slot_from_name("leye"), 2, eye_at - r_eye * side, 0.5 * p.head_rad});
  a.keypoints.push_back({keypoint_slot_from_name("reye"), 2, eye_at + r_eye * side, 0.5 * p.head_rad});
  a.keypoints.push_back({keypoint_slot_from_name("muzzle"), 2, tip + (0.3 * p.head_rad) * dir, 0.5 * p.head_rad});
  if (p.ear_len > 0) {
    for (int s : {-1, 1}) {  // -1: left
      const V3 root = base + (0.1 * p.head_len) * dir + (0.8 * p.head_rad) * up + (0.55 * s * p.head_rad) * side;
      const V3 ear_dir = unit(up + (0.6 * s) * side - 0.5 * dir + (rng.uniform(-0.2, 0.2)) * dir);
      const V3 end = root + std::max(p.ear_len, 0.02) * ear_dir;
      a.tubes.push_back({2, {root, end}, {p.ear_rad, 0.4 * p.ear_rad}, 0.02});
      a.keypoints.push_back({keypoint_slot_from_name(s < 0 ? "lear" : "rear"), 2, end, 0.8 * p.ear_rad + 0.02});
    }
  }
  if (p.trunk_len > 0) {  // elephant: the trunk curls down from the tip
    const double curl = rng.degrees(20, 70);
    std::vector<V3> path{tip};
    V3 d = dir;
    for (int i = 0; i < 4; ++i) {
      d = unit(d + V3{0, -0.9, 0} + (curl / 120.0) * V3{-0.3, 0, 0});
      path.push_back(path.back() + (p.trunk_len / 4) * d);
    }
    a.tubes.push_back({2,
                       path,
                       {0.45 * p.head_rad, 0.3 * p.head_rad, 0.22 * p.head_rad, 0.18 * p.head_rad, 0.15 * p.head_rad},
                       0.03});
  }
}

void add_tail(Animal& a, const Preset& p, V3 base, double start_angle, Rng& rng) {
  const double curl = rng.degrees(-40, 40);
  std::vector<V3> path{base};
  std::vector<double> radius{p.tail_rad};
  double angle = start_angle;
  for (int i = 1; i <= 4; ++i) {
    angle += curl / 4;
    path.push_back(path.back() + (p.tail_len / 4) * planar(angle) + V3{0, 0, rng.uniform(-0.02, 0.02)});
    radius.push_back(p.tail_rad * (1.0 - 0.18 * i));
  }
  a.tubes.push_back({4, path, radius, 0.03});
  a.keypoints.push_back({keypoint_slot_from_name("tail"), 4, base + 0.12 * (path[1] - base), 1.5 * p.tail_rad});
  a.articulation["tail_curl_deg"] = curl * 180 / M_PI;
}

Animal build_animal(const Preset& p, Rng& rng) {
  Animal a;
  const double ul = 0.5 * p.leg_len, ll = 0.5 * p.leg_len;
  if (!p.biped) {
    const double H = p.leg_len, L = p.body_len, rb = p.body_rad;
    const double sag = rng.uniform(-0.03, 0.03);
    a.tubes.push_back({3,
                       {{-L / 2, H + 0.15 * rb, 0},
                        {-L / 6, H + 0.2 * rb + sag, 0},
                        {L / 6, H + 0.2 * rb + sag, 0},
                        {L / 2, H + 0.3 * rb, 0}},
                       {0.85 * rb, rb, 1.02 * rb, 0.9 * rb},
                       0.06});
    // Legs: front at +x, back at -x; right at -z. Front knees bend back, hind hocks forward.
    struct LegSpec {
      double x, z, bend_sign;
      const char *upper, *lower;
      int64_t upper_label, lower_label;
    };
    const LegSpec legs[] = {{0.4 * L, -0.55 * rb, -1, "rfuleg", "rflleg", 9, 13},
                            {0.4 * L, 0.55 * rb, -1, "lfuleg", "lflleg", 10, 14},
                            {-0.4 * L, -0.55 * rb, 1, "rbuleg", "rblleg", 11, 15},
                            {-0.4 * L, 0.55 * rb, 1, "lbuleg", "lblleg", 12, 16}};
    for (const auto& leg : legs) {
      const double swing = rng.degrees(-25, 25), bend = leg.bend_sign * rng.degrees(0, 45);
      add_leg(a, {leg.x, H, leg.z}, ul, ll, p.leg_rad, swing, bend, leg.upper_label, leg.lower_label,
              keypoint_slot_from_name(leg.upper), keypoint_slot_from_name(leg.lower));
      a.articulation[std::string(leg.upper) + "_swing_deg"] = swing * 180 / M_PI;
      a.articulation[std::string(leg.lower) + "_bend_deg"] = bend * 180 / M_PI;
    }
    const double neck_angle = (p.neck_angle * M_PI / 180) + rng.degrees(-15, 15);
    const double yaw = rng.degrees(-25, 25);
    const V3 neck_base{0.45 * L, H + 0.45 * rb, 0};
    const V3 neck_dir =
        unit(V3{std::cos(neck_angle) * std::cos(yaw), std::sin(neck_angle), std::cos(neck_angle) * std::sin(yaw)});
    const V3 neck_end = neck_base + p.neck_len * neck_dir;
    a.tubes.push_back({1, {neck_base, neck_end}, {1.25 * p.neck_rad, p.neck_rad}, 0.04});
    const double head_pitch = -rng.degrees(20, 60);
    const V3 head_dir =
        unit(V3{std::cos(head_pitch) * std::cos(yaw), std::sin(head_pitch), std::cos(head_pitch) * std::sin(yaw)});
    add_head(a, p, neck_end, head_dir, rng);
    add_tail(a, p, {-L / 2 - 0.1 * rb, H + 0.5 * rb, 0}, M_PI + rng.degrees(25, 70), rng);
    a.articulation["neck_deg"] = neck_angle * 180 / M_PI;
    a.articulation["head_pitch_deg"] = head_pitch * 180 / M_PI;
    a.articulation["yaw_deg"] = yaw * 180 / M_PI;
  } else {
    // Upright: hip above the feet, torso leaning forward by `lean`.
    const double lean = rng.degrees(p.neck_angle > 75 ? -5 : 20, p.neck_angle > 75 ? 8 : 45);
    const V3 hip{0, 0.85 * p.leg_len + 0.5 * p.body_rad, 0};
    const V3 top = hip + p.body_len * planar(M_PI / 2 - lean);
    a.tubes.push_back({3, {hip, 0.5 * (hip + top), top}, {p.body_rad, 1.05 * p.body_rad, 0.7 * p.body_rad}, 0.05});
    // Hind legs carry the body; front legs (arms, flippers) hang from the shoulders.
    for (int s : {-1, 1}) {  // -1: right (z < 0)
      const bool right = s < 0;
      const double swing = rng.degrees(10, 45), bend = -rng.degrees(40, 100);
      add_leg(a, hip + V3{0, -0.2 * p.body_rad, 0.5 * s * p.body_rad}, 0.5 * p.leg_len, 0.55 * p.leg_len,
              p.leg_rad * 1.3, swing, bend, right ? 11 : 12, right ? 15 : 16,
              keypoint_slot_from_name(right ? "rbuleg" : "lbuleg"),
              keypoint_slot_from_name(right ? "rblleg" : "lblleg"));
      const V3 shoulder = hip + 0.8 * (top - hip) + V3{0, 0, 0.75 * s * p.body_rad};
      const double arm_swing = rng.degrees(-10, 50), arm_bend = rng.degrees(0, 60);
      const double arm = p.name == "penguin" ? 0.45 * p.body_len : 0.3 * p.body_len;
      add_leg(a, shoulder, 0.55 * arm, 0.45 * arm, p.name == "penguin" ? 0.045 : 0.035, arm_swing, arm_bend,
              right ? 9 : 10, right ? 13 : 14, keypoint_slot_from_name(right ? "rfuleg" : "lfuleg"),
              keypoint_slot_from_name(right ? "rflleg" : "lflleg"));
    }
    const V3 neck_end = top + p.neck_len * planar(M_PI / 2 - 0.5 * lean);
    a.tubes.push_back({1, {top, neck_end}, {0.8 * p.neck_rad, p.neck_rad}, 0.03});
    const double pitch = rng.degrees(-20, 10), yaw = rng.degrees(-25, 25);
    add_head(a, p, neck_end,
             unit(V3{std::cos(pitch) * std::cos(yaw), std::sin(pitch), std::cos(pitch) * std::sin(yaw)}), rng);
    add_tail(a, p, hip + V3{-0.6 * p.body_rad, 0, 0}, M_PI + rng.degrees(35, 70), rng);
    a.articulation["lean_deg"] = lean * 180 / M_PI;
  }
  return a;
}

// Tube vertices in the surface grid's layout (south pole, rings, north pole), with normals.
void sweep(const Tube& t, Rng& rng, double* verts, double* normals) {
  // Arc-length positions of the path points.
  std::vector<double> s{0};
  for (size_t i = 1; i < t.path.size(); ++i) s.push_back(s.back() + norm(t.path[i] - t.path[i - 1]));
  const double total = std::max(s.back(), 1e-9);
  auto at = [&](double u, V3& pos, double& r, V3& tangent) {
    const double x = u * total;
    size_t i = 0;
    while (i + 2 < t.path.size() && s[i + 1] < x) ++i;
    const double w = std::clamp((x - s[i]) / std::max(s[i + 1] - s[i], 1e-12), 0.0, 1.0);
    pos = t.path[i] + w * (t.path[i + 1] - t.path[i]);
    r = t.radius[i] + w * (t.radius[i + 1] - t.radius[i]);
    tangent = unit(t.path[i + 1] - t.path[i]);
  };
  // Low-frequency radial noise: a few random harmonics around and along the tube.
  double amp[3], freq_u[3], phase[3];
  int64_t around[3];
  for (int h = 0; h < 3; ++h) {
    amp[h] = t.noise * rng.uniform(0.3, 1.0) / (h + 1);
    around[h] = 1 + static_cast<int64_t>(rng.uniform(0, 3));
    freq_u[h] = rng.uniform(0.5, 2.5);
    phase[h] = rng.uniform(0, 2 * M_PI);
  }
  V3 pos, tangent, normal;
  double r;
  at(0, pos, r, tangent);
  normal = unit(std::abs(tangent.y) < 0.9 ? cross(tangent, V3{0, 1, 0}) : cross(tangent, V3{1, 0, 0}));
  auto put = [&](int64_t v, V3 p, V3 n) {
    verts[3 * v] = p.x;
    verts[3 * v + 1] = p.y;
    verts[3 * v + 2] = p.z;
    normals[3 * v] = n.x;
    normals[3 * v + 1] = n.y;
    normals[3 * v + 2] = n.z;
  };
  put(0, pos - (0.6 * r) * tangent, -1.0 * tangent);
  for (int64_t i = 0; i < kRings; ++i) {
    const double u = static_cast<double>(i) / (kRings - 1);
    V3 tan_i;
    at(u, pos, r, tan_i);
    normal = unit(normal - dot(normal, tan_i) * tan_i);  // rotation-minimising frame
    const V3 binormal = cross(tan_i, normal);
    // Rounded ends: shrink the first and last rings a little.
    const double cap = (i == 0 || i == kRings - 1) ? 0.85 : 1.0;
    for (int64_t j = 0; j < kSegments; ++j) {
      const double theta = 2 * M_PI * static_cast<double>(j) / kSegments;
      double bump = 1.0;
      for (int h = 0; h < 3; ++h) bump += amp[h] * std::sin(around[h] * theta + freq_u[h] * 2 * M_PI * u + phase[h]);
      const V3 dir = std::cos(theta) * normal + std::sin(theta) * binormal;
      put(1 + i * kSegments + j, pos + (cap * r * bump) * dir, dir);
    }
    tangent = tan_i;
  }
  put(1 + kRings * kSegments, pos + (0.6 * r) * tangent, tangent);
}

// A smooth pseudo-random field for textures (sum of a few plane waves).
struct Waves {
  V3 k[4];
  double phase[4];
  explicit Waves(Rng& rng, double frequency) {
    for (int i = 0; i < 4; ++i) {
      k[i] = frequency * unit(V3{rng.normal(), rng.normal(), rng.normal()});
      phase[i] = rng.uniform(0, 2 * M_PI);
    }
  }
  double operator()(V3 p) const {
    double s = 0;
    for (int i = 0; i < 4; ++i) s += std::sin(dot(k[i], p) + phase[i]);
    return s / 4;
  }
};

// The DINO surrogate's prototype vectors: 17 part labels (0 unused) + 8 background kinds.
constexpr int64_t kBackgroundKinds = 8, kPrototypes = kNumPartLabels + 1 + kBackgroundKinds;
// Shares of the common animal and scene directions in the part and background prototypes.
constexpr double kAnimalShare = 0.75, kSceneShare = 0.9, kSceneAway = 0.9;

// The DINO surrogate's prototypes, (kPrototypes + 1) x D: part labels 0..16, background
// kinds, and last the zero padding a ViT sees outside an image. DINO's patch features
// separate object from background along shared directions (their first principal
// component is foreground vs background): every part prototype holds a common "animal"
// direction, every background prototype (padding included) a common "scene" direction
// that points away from it, each plus its own random part.
std::vector<double> surrogate_prototypes(int64_t D) {
  Rng proto_rng(0x5eed5eedull);  // the same prototypes for every image and species
  const double unit = 1 / std::sqrt(static_cast<double>(D));
  std::vector<double> proto((kPrototypes + 1) * D), animal_dir(D), scene_dir(D);
  for (auto& v : animal_dir) v = proto_rng.normal() * unit;
  for (int64_t d = 0; d < D; ++d)
    scene_dir[d] = -kSceneAway * animal_dir[d] + std::sqrt(1 - kSceneAway * kSceneAway) * proto_rng.normal() * unit;
  for (int64_t c = 0; c <= kPrototypes; ++c) {
    const bool part = c <= kNumPartLabels;
    const double shared = part ? kAnimalShare : kSceneShare, own = std::sqrt(1 - shared * shared);
    for (int64_t d = 0; d < D; ++d)
      proto[c * D + d] = shared * (part ? animal_dir[d] : scene_dir[d]) + own * proto_rng.normal() * unit;
  }
  return proto;
}

}  // namespace

at::Tensor surrogate_padding_feature(int64_t dim) {
  TORCH_CHECK(dim >= 1, "surrogate_padding_feature: dim must be positive");
  const auto proto = surrogate_prototypes(dim);
  auto out = at::empty({dim}, at::kFloat);
  double n2 = 0;
  for (int64_t d = 0; d < dim; ++d) n2 += proto[kPrototypes * dim + d] * proto[kPrototypes * dim + d];
  for (int64_t d = 0; d < dim; ++d) out[d] = static_cast<float>(proto[kPrototypes * dim + d] / std::sqrt(n2));
  return out;
}

const std::vector<std::string>& menagerie_categories() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (const auto& p : presets()) n.push_back(p.name);
    return n;
  }();
  return names;
}

SyntheticImage render_synthetic(const std::string& category, int64_t S, uint64_t seed,
                                const SurrogateOptions& surrogate) {
  const Preset& p = preset(category);
  TORCH_CHECK(S >= 16 && S % surrogate.stride == 0, "render_synthetic: size must be >= 16 and a multiple of ",
              surrogate.stride, ", got ", S);
  Rng rng(mix(seed, name_hash(category)));
  const Animal animal = build_animal(p, rng);
  const int64_t K = static_cast<int64_t>(animal.tubes.size()), V = kRings * kSegments + 2;
  static const core::SurfaceGrid grid = core::make_surface_grid(kRings, kSegments);

  // Vertices and normals in the object frame.
  std::vector<double> verts(K * V * 3), normals(K * V * 3);
  for (int64_t k = 0; k < K; ++k) sweep(animal.tubes[k], rng, &verts[k * V * 3], &normals[k * V * 3]);
  V3 lo{1e9, 1e9, 1e9}, hi{-1e9, -1e9, -1e9};
  for (int64_t i = 0; i < K * V; ++i) {
    lo = {std::min(lo.x, verts[3 * i]), std::min(lo.y, verts[3 * i + 1]), std::min(lo.z, verts[3 * i + 2])};
    hi = {std::max(hi.x, verts[3 * i]), std::max(hi.y, verts[3 * i + 1]), std::max(hi.z, verts[3 * i + 2])};
  }
  const V3 centre = 0.5 * (lo + hi);
  double radius = 0;
  for (int64_t i = 0; i < K * V; ++i)
    radius = std::max(radius, norm(V3{verts[3 * i], verts[3 * i + 1], verts[3 * i + 2]} - centre));

  // Camera: azimuth all round, slightly from above; the animal fills most of the frame.
  const double azimuth = rng.uniform(0, 2 * M_PI), elevation = rng.degrees(-5, 25), focal = 2.0;
  const double distance = radius * focal / rng.uniform(0.75, 0.95);
  const V3 eye = centre + distance * V3{std::cos(elevation) * std::cos(azimuth), std::sin(elevation),
                                        std::cos(elevation) * std::sin(azimuth)};
  const V3 zc = unit(centre - eye), xc = unit(cross(zc, V3{0, 1, 0})), yc = cross(zc, xc);
  auto to_camera = [&](V3 x) {
    const V3 d = x - eye;
    return V3{dot(xc, d), dot(yc, d), dot(zc, d)};
  };
  auto to_pixel = [&](V3 c, double& px, double& py) {  // pixel-centre coordinates, as the rasteriser's
    px = (focal * c.x / c.z * S + S - 1) / 2;
    py = (focal * c.y / c.z * S + S - 1) / 2;
  };
  auto projected = at::empty({1, K, V, 3}, at::kDouble);
  double* pp = projected.data_ptr<double>();
  for (int64_t i = 0; i < K * V; ++i) {
    const V3 c = to_camera({verts[3 * i], verts[3 * i + 1], verts[3 * i + 2]});
    pp[3 * i] = focal * c.x / c.z;
    pp[3 * i + 1] = focal * c.y / c.z;
    pp[3 * i + 2] = c.z;
  }
  const auto frags = render::rasterize_hard(projected, grid.faces, S, S);
  const int64_t* part_id = frags.part_id.data_ptr<int64_t>();
  const int64_t* face_id = frags.face_id.data_ptr<int64_t>();
  const double* bary = frags.barycentric.data_ptr<double>();
  const int64_t* faces = grid.faces.data_ptr<int64_t>();

  SyntheticImage out;
  out.image = at::empty({S, S, 3}, at::kByte);
  out.mask = at::zeros({S, S}, at::kByte);
  out.parts = at::zeros({S, S}, at::kByte);
  out.depth = frags.depth[0].to(at::kFloat).contiguous();
  out.mesh = projected[0].to(at::kFloat);
  out.mesh_faces = grid.faces;
  for (const auto& tube : animal.tubes) out.mesh_labels.push_back(tube.label);
  uint8_t* img = out.image.data_ptr<uint8_t>();
  uint8_t* mask = out.mask.data_ptr<uint8_t>();
  uint8_t* parts = out.parts.data_ptr<uint8_t>();
  std::vector<int64_t> background_kind(S * S);

  // Background: sky and ground with a horizon, then clutter shapes, then pixel noise.
  const double horizon = rng.uniform(0.25, 0.75) * S;
  const V3 sky{rng.uniform(0.4, 0.9), rng.uniform(0.5, 0.9), rng.uniform(0.6, 1.0)};
  const V3 ground{rng.uniform(0.2, 0.6), rng.uniform(0.3, 0.6), rng.uniform(0.1, 0.4)};
  struct Blob {
    double cx, cy, rx, ry;
    V3 colour;
    int64_t kind;
    bool box;
  };
  std::vector<Blob> blobs;
  const int64_t n_blobs = 3 + static_cast<int64_t>(rng.uniform(0, 6));
  for (int64_t b = 0; b < n_blobs; ++b) {
    blobs.push_back({rng.uniform(0, S),
                     rng.uniform(0, S),
                     rng.uniform(0.03, 0.2) * S,
                     rng.uniform(0.03, 0.2) * S,
                     {rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0, 1)},
                     2 + static_cast<int64_t>(rng.uniform(0, 6)),
                     rng.uniform() < 0.5});
  }
  const Waves texture(rng, p.texture == Texture::Wool ? 60.0 : 9.0);
  const double stripe_period = rng.uniform(0.07, 0.11), stripe_tilt = rng.uniform(-0.6, 0.6);
  const V3 light = unit(V3{rng.uniform(-0.6, 0.6), rng.uniform(-0.9, -0.2), -1.0});  // camera frame, towards the camera
  std::vector<double> normals_cam(K * V * 3);
  for (int64_t i = 0; i < K * V; ++i) {
    const V3 n{normals[3 * i], normals[3 * i + 1], normals[3 * i + 2]};
    normals_cam[3 * i] = dot(xc, n);
    normals_cam[3 * i + 1] = dot(yc, n);
    normals_cam[3 * i + 2] = dot(zc, n);
  }
  for (int64_t y = 0; y < S; ++y) {
    for (int64_t x = 0; x < S; ++x) {
      const int64_t i = y * S + x;
      V3 colour = y < horizon ? sky : ground;
      int64_t kind = y < horizon ? 0 : 1;
      for (const auto& b : blobs) {
        const double dx = (x - b.cx) / b.rx, dy = (y - b.cy) / b.ry;
        if (b.box ? (std::abs(dx) < 1 && std::abs(dy) < 1) : (dx * dx + dy * dy < 1)) {
          colour = b.colour;
          kind = b.kind;
        }
      }
      background_kind[i] = kind;
      const int64_t k = part_id[i];
      if (k >= 0) {
        const int64_t* f = faces + 3 * face_id[i];
        const double* w = bary + 3 * i;
        V3 pos, n;
        for (int c = 0; c < 3; ++c) {
          const int64_t v = k * V + f[c];
          pos = pos + w[c] * V3{verts[3 * v], verts[3 * v + 1], verts[3 * v + 2]};
          n = n + w[c] * V3{normals_cam[3 * v], normals_cam[3 * v + 1], normals_cam[3 * v + 2]};
        }
        n = unit(n);
        double t = 0;  // 0: colour, 1: second colour
        switch (p.texture) {
          case Texture::Plain:
            t = 0.25 + 0.25 * texture(pos);
            break;
          case Texture::Stripes:
            t = std::sin(2 * M_PI * (pos.x + stripe_tilt * pos.y) / stripe_period) > 0 ? 1 : 0;
            break;
          case Texture::Tiger:
            t = std::sin(2 * M_PI * (pos.x + stripe_tilt * pos.y) / (1.4 * stripe_period) + 3 * texture(pos)) > 0.55
                    ? 1
                    : 0;
            break;
          case Texture::Patches:
            t = texture(pos) > 0.15 ? 1 : 0;
            break;
          case Texture::Wool:
            t = 0.3 + 0.3 * texture(pos);
            break;
          case Texture::Tuxedo:
            t = (n.z < -0.3 && pos.y > 0.2) ? 1 : 0;
            break;  // the belly facing the camera
        }
        const V3 base = (1 - t) * p.colour + t * p.second;
        const double shade = 0.35 + 0.65 * std::max(0.0, -dot(n, light));
        colour = shade * base;
        mask[i] = 1;
        parts[i] = static_cast<uint8_t>(animal.tubes[k].label);
      }
      const double grain = 0.03 * rng.normal();
      img[3 * i] = static_cast<uint8_t>(std::clamp(255 * (colour.x + grain), 0.0, 255.0));
      img[3 * i + 1] = static_cast<uint8_t>(std::clamp(255 * (colour.y + grain), 0.0, 255.0));
      img[3 * i + 2] = static_cast<uint8_t>(std::clamp(255 * (colour.z + grain), 0.0, 255.0));
    }
  }

  // Keypoints: visible when in the image, on a pixel of their own part label, and at the
  // front surface there (depth within the part's radius).
  out.keypoints = at::zeros({kNumKeypoints, 3}, at::kFloat);
  auto kp = out.keypoints.accessor<float, 2>();
  const float* depth = out.depth.data_ptr<float>();
  for (const auto& k3 : animal.keypoints) {
    const V3 c = to_camera(k3.p);
    double px, py;
    to_pixel(c, px, py);
    kp[k3.slot][0] = static_cast<float>(px);
    kp[k3.slot][1] = static_cast<float>(py);
    const int64_t ix = std::lround(px), iy = std::lround(py);
    bool visible = ix >= 0 && ix < S && iy >= 0 && iy < S;
    if (visible) {
      const int64_t i = iy * S + ix;
      visible = parts[i] == k3.label && std::abs(depth[i] - c.z) <= k3.tolerance;
    }
    kp[k3.slot][2] = visible ? 1.0f : 0.0f;
  }

  // The DINO surrogate.
  const int64_t G = S / surrogate.stride, D = surrogate.dim;
  const auto proto = surrogate_prototypes(D);
  Rng species_rng(name_hash(category));
  std::vector<double> species(kPrototypes * D), instance(D);
  for (auto& v : species) v = 0.25 * species_rng.normal() / std::sqrt(static_cast<double>(D));
  for (auto& v : instance) v = 0.15 * rng.normal() / std::sqrt(static_cast<double>(D));
  out.features = at::zeros({G, G, D}, at::kFloat);
  float* feat = out.features.data_ptr<float>();
  std::vector<double> f(D), weight(kPrototypes);
  for (int64_t gy = 0; gy < G; ++gy) {
    for (int64_t gx = 0; gx < G; ++gx) {
      std::fill(weight.begin(), weight.end(), 0.0);
      for (int64_t y = gy * surrogate.stride; y < (gy + 1) * surrogate.stride; ++y) {
        for (int64_t x = gx * surrogate.stride; x < (gx + 1) * surrogate.stride; ++x) {
          const int64_t i = y * S + x;
          weight[parts[i] > 0 ? parts[i] : kNumPartLabels + 1 + background_kind[i]] += 1;
        }
      }
      std::fill(f.begin(), f.end(), 0.0);
      double n2 = 0;
      for (int64_t d = 0; d < D; ++d) {
        for (int64_t c = 0; c < kPrototypes; ++c) {
          if (weight[c] > 0)
            f[d] += weight[c] * (proto[c * D + d] + species[c * D + d] + (c <= kNumPartLabels ? instance[d] : 0));
        }
        f[d] = f[d] / (surrogate.stride * surrogate.stride) +
               surrogate.noise * rng.normal() / std::sqrt(static_cast<double>(D));
        n2 += f[d] * f[d];
      }
      const double inv = 1 / std::max(std::sqrt(n2), 1e-12);
      for (int64_t d = 0; d < D; ++d) feat[(gy * G + gx) * D + d] = static_cast<float>(f[d] * inv);
    }
  }

  // The surrogate's saliency (simulated CLS attention).
  {
    // Attention per part label (DINO's CLS attention peaks on heads and bodies) and per
    // background clutter kind (a few clutter kinds draw some attention, as real clutter does).
    static const double part_gain[kNumPartLabels + 1] = {0,    0.8,  1.0,  0.75, 0.45, 0,   0,   0,  0,
                                                         0.55, 0.55, 0.55, 0.55, 0.4,  0.4, 0.4, 0.4};
    static const double clutter_gain[kBackgroundKinds] = {0, 0, 0, 0.15, 0, 0, 0, 0.2};
    out.saliency = at::zeros({G, G}, at::kFloat);
    float* sal = out.saliency.data_ptr<float>();
    double lo = 1e30, hi = -1e30;
    std::vector<double> raw(static_cast<size_t>(G * G));
    for (int64_t gy = 0; gy < G; ++gy)
      for (int64_t gx = 0; gx < G; ++gx) {
        double a = 0;
        for (int64_t y = gy * surrogate.stride; y < (gy + 1) * surrogate.stride; ++y)
          for (int64_t x = gx * surrogate.stride; x < (gx + 1) * surrogate.stride; ++x) {
            const int64_t i = y * S + x;
            a += parts[i] > 0 ? part_gain[parts[i]] : clutter_gain[background_kind[i]];
          }
        a = std::max(0.0, a / static_cast<double>(surrogate.stride * surrogate.stride) +
                              surrogate.saliency_noise * rng.normal());
        raw[static_cast<size_t>(gy * G + gx)] = a;
        lo = std::min(lo, a);
        hi = std::max(hi, a);
      }
    for (int64_t i = 0; i < G * G; ++i)
      sal[i] = static_cast<float>((raw[static_cast<size_t>(i)] - lo) / std::max(hi - lo, 1e-12));
  }

  nlohmann::json params;
  params["category"] = category;
  params["seed"] = seed;
  params["size"] = S;
  params["camera"] = {{"azimuth_deg", azimuth * 180 / M_PI},
                      {"elevation_deg", elevation * 180 / M_PI},
                      {"distance", distance},
                      {"focal", focal}};
  params["articulation"] = animal.articulation;
  params["parts"] = K;
  params["mesh"] = {{"rings", kRings}, {"segments", kSegments}, {"labels", out.mesh_labels}};
  params["surrogate"] = {{"dim", D},
                         {"noise", surrogate.noise},
                         {"stride", surrogate.stride},
                         {"saliency_noise", surrogate.saliency_noise}};
  out.params_json = params.dump(2);
  return out;
}

void write_menagerie(const fs::path& root, const MenagerieOptions& o) {
  preset(o.category);  // validates the name
  TORCH_CHECK(o.count >= 1, "write_menagerie: count must be positive");
  const std::string c = o.category;
  std::vector<std::string> rows(static_cast<size_t>(o.count));
  std::atomic<int64_t> written{0};
  at::parallel_for(0, o.count, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const auto s = render_synthetic(c, o.size, mix(o.seed, static_cast<uint64_t>(i)), o.surrogate);
      const std::string id = std::to_string(i);
      io::write_png(root / "images" / c / ("input_" + id + ".png"), s.image);
      io::write_png(root / "gt" / c / ("mask_" + id + ".png"), s.mask * 255);
      io::write_png(root / "gt" / c / ("parts_" + id + ".png"), s.parts);
      io::write_npy(root / "gt" / c / ("depth_" + id + ".npy"), s.depth);
      io::write_npy(root / "gt" / c / ("mesh_" + id + ".npy"), s.mesh.contiguous());
      io::write_file_atomic(root / "gt" / c / ("params_" + id + ".json"), s.params_json);
      io::write_npy(root / "features" / c / ("input_" + id + ".npy"), s.features);
      io::write_npy(root / "saliency" / c / ("input_" + id + ".npy"), s.saliency);
      // Label-Studio style keypoints in percent of the image, visible ones only.
      nlohmann::json kps = nlohmann::json::array();
      const auto& labels = keypoint_labels();
      const auto k = s.keypoints.accessor<float, 2>();
      for (int64_t j = 0; j < kNumKeypoints; ++j) {
        if (k[j][2] <= 0) continue;
        kps.push_back({{"x", 100.0 * k[j][0] / o.size},
                       {"y", 100.0 * k[j][1] / o.size},
                       {"keypointlabels", {std::string(labels[static_cast<size_t>(j)])}},
                       {"original_width", o.size},
                       {"original_height", o.size}});
      }
      std::string field = kps.dump();
      std::string quoted = "\"";
      for (char ch : field) quoted += ch == '"' ? std::string("\"\"") : std::string(1, ch);
      rows[static_cast<size_t>(i)] = id + ",synthetic://" + c + "/" + id + "," + quoted + "\"";
      const int64_t done = ++written;
      if (o.progress) o.progress(done, o.count);
    }
  });
  std::string csv = "id,img_url,kps\n";
  for (const auto& r : rows) csv += r + "\n";
  io::write_file_atomic(root / "annotations" / (c + ".csv"), csv);
}

std::optional<GroundTruthMesh> read_ground_truth_mesh(const fs::path& root, const Sample& sample) {
  const auto slash = sample.id.find('/');
  if (slash == std::string::npos) return std::nullopt;
  const std::string c = sample.id.substr(0, slash), id = sample.id.substr(slash + 1);
  const auto mesh_path = root / "gt" / c / ("mesh_" + id + ".npy"),
             params_path = root / "gt" / c / ("params_" + id + ".json");
  if (!fs::exists(mesh_path)) return std::nullopt;
  GroundTruthMesh m;
  int64_t vertices = 0;
  try {
    std::ifstream in(params_path);
    if (!in) throw std::runtime_error("cannot open it");
    const auto params = nlohmann::json::parse(in);
    const auto& mesh = params.at("mesh");
    m.labels = mesh.at("labels").get<std::vector<int64_t>>();
    const auto grid = core::make_surface_grid(mesh.at("rings").get<int64_t>(), mesh.at("segments").get<int64_t>());
    m.faces = grid.faces;
    vertices = grid.num_vertices();
  } catch (const std::exception& e) {
    throw DataError(params_path.string() + ": no usable \"mesh\" entry beside " + mesh_path.filename().string() + " (" +
                    e.what() + ")");
  }
  at::Tensor verts;
  try {
    verts = io::read_npy(mesh_path).to(at::kDouble);
  } catch (const std::exception& e) {
    throw DataError(e.what());
  }
  const int64_t pieces = static_cast<int64_t>(m.labels.size());
  if (verts.dim() != 3 || verts.size(0) != pieces || verts.size(1) != vertices || verts.size(2) != 3)
    throw DataError(mesh_path.string() + ": expected (" + std::to_string(pieces) + ", V, 3) vertices of the grid in " +
                    params_path.filename().string());
  if (sample.original_width <= 0 || sample.original_height <= 0 || sample.crop.size <= 0 || sample.image.dim() != 3)
    throw DataError(mesh_path.string() + ": the sample has no crop to place the mesh in");
  // Normalised coordinates of the whole image -> continuous pixels -> the crop's normalised
  // coordinates (the crop is a square; the depth stays the camera depth).
  const double w = static_cast<double>(sample.original_width), h = static_cast<double>(sample.original_height);
  const double size = static_cast<double>(sample.crop.size);
  auto x = (verts.select(2, 0) + 1.0) * (w / 2.0), y = (verts.select(2, 1) + 1.0) * (h / 2.0);
  x = (x - static_cast<double>(sample.crop.left)) * (2.0 / size) - 1.0;
  y = (y - static_cast<double>(sample.crop.top)) * (2.0 / size) - 1.0;
  m.verts = at::stack({x, y, verts.select(2, 2)}, 2).to(at::kFloat);
  return m;
}

}  // namespace lepard::data
