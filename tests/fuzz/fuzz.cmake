# Fuzzing of the parsers that read untrusted files. Included from tests/CMakeLists.txt.
# - Any compiler: a replay test runs the fuzz target over the committed seed corpus.
# - Clang: the libFuzzer binary safetensors_header_fuzzer is built too. With GCC, build it through
#   the separate project in this folder:
#     cmake -S tests/fuzz -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ && ninja -C build-fuzz
#     build-fuzz/safetensors_header_fuzzer -max_total_time=60 <scratch-corpus> tests/fuzz/corpus/safetensors_header

include(${CMAKE_CURRENT_LIST_DIR}/fuzzer_target.cmake)

add_executable(safetensors_header_replay
  ${CMAKE_CURRENT_LIST_DIR}/safetensors_header_fuzz.cpp
  ${CMAKE_CURRENT_LIST_DIR}/replay_main.cpp)
target_link_libraries(safetensors_header_replay PRIVATE dsv2_engine)
dsv2_set_warnings(safetensors_header_replay)
add_test(NAME safetensors_header_corpus_replay
         COMMAND safetensors_header_replay ${CMAKE_CURRENT_LIST_DIR}/corpus/safetensors_header)

if(CMAKE_CXX_COMPILER_ID MATCHES "Clang" AND NOT DSV2_SANITIZE)
  dsv2_add_safetensors_fuzzer(safetensors_header_fuzzer)
endif()
