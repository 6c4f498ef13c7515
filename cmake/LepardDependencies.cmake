# Third-party packages. Every one comes from a Debian package (third_party/README.md);
# a LibTorch 2.x (with or without CUDA) is used instead when Torch_DIR points at it.

find_package(Torch REQUIRED)
if(Torch_VERSION VERSION_LESS 1.13)
  message(FATAL_ERROR "lepard needs LibTorch 1.13 or newer; found ${Torch_VERSION} (set Torch_DIR to another one)")
endif()
message(STATUS "lepard: LibTorch ${Torch_VERSION} from ${Torch_DIR}")

if(LEPARD_WITH_CUDA)
  if(NOT TORCH_CUDA_LIBRARIES)
    message(FATAL_ERROR "LEPARD_WITH_CUDA=ON but the LibTorch in ${Torch_DIR} was built without CUDA. "
                        "Point Torch_DIR at a CUDA build, e.g. $(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')/Torch")
  endif()
  message(STATUS "lepard: CUDA-enabled LibTorch; device tests also run on CUDA")
endif()

# at::parallel_for is inline code: where ATen was built with OpenMP (Debian's and the
# official LibTorch builds: AT_PARALLEL_OPENMP in ATen/Config.h) it is a
# "#pragma omp parallel" that runs on one thread unless *our* sources compile with OpenMP.
find_package(OpenMP REQUIRED COMPONENTS CXX)

find_package(Threads REQUIRED)
find_package(spdlog REQUIRED)
find_package(nlohmann_json REQUIRED)
find_package(yaml-cpp REQUIRED)
find_package(CLI11 2.1 REQUIRED)         # command lines of the tools (apps/cli)
find_package(Eigen3 3.3 REQUIRED NO_MODULE)  # small fixed-size algebra (core, render)
find_package(ZLIB REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(MATIO REQUIRED IMPORTED_TARGET matio)

# OpenCV (core, imgproc, imgcodecs) for image files and drawing, as the imported target
# lepard::opencv. Debian's small -dev packages ship no OpenCVConfig.cmake (the full
# libopencv-dev does), so fall back to finding the headers and libraries directly.
find_package(OpenCV QUIET COMPONENTS core imgproc imgcodecs)
add_library(lepard_opencv INTERFACE)
add_library(lepard::opencv ALIAS lepard_opencv)
if(OpenCV_FOUND)
  target_link_libraries(lepard_opencv INTERFACE opencv_core opencv_imgproc opencv_imgcodecs)
else()
  find_path(LEPARD_OPENCV_INCLUDE opencv2/core.hpp PATH_SUFFIXES opencv4)
  find_library(LEPARD_OPENCV_CORE opencv_core)
  find_library(LEPARD_OPENCV_IMGPROC opencv_imgproc)
  find_library(LEPARD_OPENCV_IMGCODECS opencv_imgcodecs)
  if(NOT LEPARD_OPENCV_INCLUDE OR NOT LEPARD_OPENCV_CORE OR NOT LEPARD_OPENCV_IMGPROC OR NOT LEPARD_OPENCV_IMGCODECS)
    message(FATAL_ERROR "OpenCV (core, imgproc, imgcodecs) not found: install libopencv-imgcodecs-dev and "
                        "libopencv-imgproc-dev, or set OpenCV_DIR")
  endif()
  target_include_directories(lepard_opencv SYSTEM INTERFACE ${LEPARD_OPENCV_INCLUDE})
  target_link_libraries(lepard_opencv INTERFACE ${LEPARD_OPENCV_IMGCODECS} ${LEPARD_OPENCV_IMGPROC} ${LEPARD_OPENCV_CORE})
endif()
