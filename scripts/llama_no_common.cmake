# Included by CMake right after llama.cpp's project() call (CMAKE_PROJECT_llama.cpp_INCLUDE,
# set by scripts/llama_wheel.py). llama-cpp-python's CMakeLists forces LLAMA_BUILD_COMMON on,
# but nothing the Python bindings load uses llama.cpp's common library (chat parsers, JSON
# schema, HTTP client, argument parsing): turning it off here skips most of the build.
set(LLAMA_BUILD_COMMON OFF CACHE BOOL "llama: build common utils library" FORCE)
