# Shared by scripts/test.sh and scripts/demo.sh: install what is missing, configure, build.
# Source it from the repository root.

# Debian packages lepard builds and runs with (third_party/README.md says why each).
LEPARD_PACKAGES=(
  cmake g++ make ccache
  clang-format          # the style check (scripts/format.sh, test style.clang_format)
  libtorch-dev          # LibTorch 1.13 (CPU); a LibTorch 2.x can replace it through Torch_DIR
  libopenblas0-pthread  # replaces the reference BLAS behind libblas.so.3 (about 25x faster matrix products)
  libspdlog-dev         # logging
  libopencv-imgcodecs-dev libopencv-imgproc-dev  # image files (PNG, JPEG) and drawing
  nlohmann-json3-dev    # JSON (LASSIE annotations, parameter files)
  libmatio-dev pkg-config  # Pascal-Part .mat annotations
  zlib1g-dev            # indexed (palette) PNG label maps
  python3-scipy python3-numpy python3-torch python3-pil  # tests: fixtures written by the real scipy.io.savemat, numpy.save, torch.save, PIL
  libyaml-cpp-dev       # training configs (YAML)
  libcli11-dev          # command lines of the tools
  libeigen3-dev         # small fixed-size algebra in the CPU kernels
  libgloo-dev           # c10d Gloo headers: multi-process (data-parallel) training
  libgtest-dev          # tests
  libbenchmark-dev      # bench/
)

# lepard_python MODULE...: prints the first python3 (on PATH, then Debian's) that imports
# every MODULE, or nothing. $LEPARD_PYTHON, when set, is the answer. The fixtures need
# Debian's python3-torch and friends; a pyenv or venv python3 earlier on PATH often lacks them.
lepard_python() {
  if [ -n "${LEPARD_PYTHON:-}" ]; then echo "$LEPARD_PYTHON"; return 0; fi
  local imports candidate
  imports=$(IFS=,; echo "$*")
  for candidate in $(type -ap python3) /usr/bin/python3; do
    if "$candidate" -c "import ${imports:-sys}" >/dev/null 2>&1; then echo "$candidate"; return 0; fi
  done
}

lepard_log() { printf '\033[1m[lepard]\033[0m %s\n' "$*"; }

# ensure_packages PKG...: installs the packages that are not installed yet.
ensure_packages() {
  local missing=()
  local p
  for p in "$@"; do
    if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]; then
      missing+=("$p")
    fi
  done
  if [ ${#missing[@]} -eq 0 ]; then
    lepard_log "all ${#@} Debian packages present"
    return 0
  fi
  lepard_log "installing ${missing[*]}"
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
      sudo="sudo"
    else
      echo "lepard: missing Debian packages: ${missing[*]}; run as root or install them first" >&2
      return 1
    fi
  fi
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# ensure_gltf_validator DIR: the Khronos glTF-Validator (npm package gltf-validator) under
# DIR/node_modules, when node and npm are on the machine and the registry answers; the test
# io.glb_passes_the_khronos_validator and scripts/check_report.sh use it, and skip (saying so)
# without it. Never fails the set-up.
ensure_gltf_validator() {
  local dir="$1"
  if [ -f "$dir/node_modules/gltf-validator/package.json" ]; then return 0; fi
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    lepard_log "no node/npm: the glTF-Validator check will be skipped"
    return 0
  fi
  mkdir -p "$dir"
  if timeout 120 npm install --silent --no-audit --no-fund --prefix "$dir" gltf-validator >/dev/null 2>&1; then
    lepard_log "glTF-Validator installed in $dir"
  else
    lepard_log "npm could not install gltf-validator: the glTF-Validator check will be skipped"
  fi
}

# lepard_build BUILD_DIR [cmake args...]: configures (Release by default) and builds.
lepard_build() {
  local dir="$1"
  shift
  local jobs
  jobs="$(nproc 2>/dev/null || echo 2)"
  lepard_log "configuring ${dir}"
  mkdir -p "$dir"
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE="${CMAKE_BUILD_TYPE:-Release}" "$@" >"${dir}/configure.log" 2>&1 ||
    { cat "${dir}/configure.log"; return 1; }
  lepard_log "building with ${jobs} jobs (first build: several minutes; ccache makes later ones fast)"
  cmake --build "$dir" -j "$jobs"
}
