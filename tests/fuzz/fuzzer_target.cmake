# dsv2_add_safetensors_fuzzer(TARGET): the libFuzzer binary for the safetensors header parser.
# Needs clang (-fsanitize=fuzzer). The parser's sources are compiled into the target itself so
# that libFuzzer's coverage instrumentation and the sanitizers see them.
set(DSV2_FUZZ_DIR ${CMAKE_CURRENT_LIST_DIR})
get_filename_component(DSV2_FUZZ_ROOT ${CMAKE_CURRENT_LIST_DIR}/../.. ABSOLUTE)

function(dsv2_add_safetensors_fuzzer target)
  add_executable(${target}
    ${DSV2_FUZZ_DIR}/safetensors_header_fuzz.cpp
    ${DSV2_FUZZ_ROOT}/engine/model/safetensors_header.cpp
    ${DSV2_FUZZ_ROOT}/engine/model/tensor.cpp
    ${DSV2_FUZZ_ROOT}/engine/core/status.cpp)
  target_include_directories(${target} PRIVATE ${DSV2_FUZZ_ROOT}/engine/include ${DSV2_FUZZ_ROOT}/engine)
  target_link_libraries(${target} PRIVATE nlohmann_json::nlohmann_json)
  target_compile_features(${target} PRIVATE cxx_std_20)
  target_compile_options(${target} PRIVATE -g -O1 -fno-omit-frame-pointer
                         -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined)
  target_link_options(${target} PRIVATE -fsanitize=fuzzer,address,undefined)
endfunction()
