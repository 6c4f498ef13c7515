# Compiler settings shared by every lepard target.

if(NOT CMAKE_BUILD_TYPE AND NOT CMAKE_CONFIGURATION_TYPES)
  set(CMAKE_BUILD_TYPE Release CACHE STRING "Build type" FORCE)
endif()

set(CMAKE_CXX_STANDARD 17)
set(CMAKE_CXX_STANDARD_REQUIRED ON)
set(CMAKE_CXX_EXTENSIONS OFF)
set(CMAKE_POSITION_INDEPENDENT_CODE ON)
set(CMAKE_EXPORT_COMPILE_COMMANDS ON)

# Compile time is the main cost of a LibTorch project: reuse objects when ccache is there.
find_program(LEPARD_CCACHE ccache)
if(LEPARD_CCACHE AND NOT CMAKE_CXX_COMPILER_LAUNCHER)
  set(CMAKE_CXX_COMPILER_LAUNCHER "${LEPARD_CCACHE}")
  set(CMAKE_CUDA_COMPILER_LAUNCHER "${LEPARD_CCACHE}")
  message(STATUS "lepard: using ccache (${LEPARD_CCACHE})")
endif()

# Warnings for lepard's own targets (not for the dependencies' headers).
function(lepard_target_warnings target)
  if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    target_compile_options(${target} PRIVATE -Wall -Wextra -Wno-unused-parameter)
  endif()
endfunction()
