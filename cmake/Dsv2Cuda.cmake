# CUDA 13 with CMake 3.25: CMake does not know nvcc's C++20 flag yet, so give it one.
if(NOT DEFINED CMAKE_CUDA20_STANDARD_COMPILE_OPTION)
  set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
  set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
endif()
set(CMAKE_CUDA_STANDARD 20)
set(CMAKE_CUDA_STANDARD_REQUIRED ON)
set(CMAKE_CUDA_RUNTIME_LIBRARY Shared)
# H100/H200 (sm_90). Not "native": the build machine has no GPU. The kernels need sm_80+ (bf16
# tensor cores, cp.async; the backend refuses older GPUs at run time), so a compiler default below
# that (CMake picks nvcc's: 52 with CUDA 12, 75 with CUDA 13) becomes 90; an explicit list of
# sm_80+ architectures is kept.
set(_dsv2_old_arch OFF)
foreach(_arch IN LISTS CMAKE_CUDA_ARCHITECTURES)
  string(REGEX MATCH "^[0-9]+" _num "${_arch}")
  if(_num AND _num LESS 80)
    set(_dsv2_old_arch ON)
  endif()
endforeach()
if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES OR _dsv2_old_arch)
  if(DEFINED CMAKE_CUDA_ARCHITECTURES)
    message(STATUS "dsv2: CUDA architectures ${CMAKE_CUDA_ARCHITECTURES} predate sm_80; building for 90")
  endif()
  set(CMAKE_CUDA_ARCHITECTURES 90)
endif()
find_package(CUDAToolkit REQUIRED)
