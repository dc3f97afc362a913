# Third-party dependencies. The engine's core needs only header-only libraries (nlohmann-json) plus
# PCRE2, so it also builds on the GPU machine, where they are carried in DSV2_EXTRA_INCLUDE_DIR.

find_package(Threads REQUIRED)

if(DSV2_EXTRA_INCLUDE_DIR)
  include_directories(SYSTEM ${DSV2_EXTRA_INCLUDE_DIR})
endif()

# nlohmann-json: header only.
find_package(nlohmann_json 3.10 QUIET)
if(NOT nlohmann_json_FOUND)
  find_path(DSV2_NLOHMANN_INCLUDE nlohmann/json.hpp PATHS ${DSV2_EXTRA_INCLUDE_DIR} REQUIRED)
  add_library(nlohmann_json::nlohmann_json INTERFACE IMPORTED)
  target_include_directories(nlohmann_json::nlohmann_json SYSTEM INTERFACE ${DSV2_NLOHMANN_INCLUDE})
endif()

# PCRE2 (8-bit, UTF + UCP, JIT) for the tokenizer's Unicode pre-tokenizer regexes.
find_path(DSV2_PCRE2_INCLUDE pcre2.h PATHS ${DSV2_EXTRA_INCLUDE_DIR} REQUIRED)
find_library(DSV2_PCRE2_LIB NAMES pcre2-8 libpcre2-8.so.0 REQUIRED)
add_library(dsv2_pcre2 INTERFACE)
target_include_directories(dsv2_pcre2 SYSTEM INTERFACE ${DSV2_PCRE2_INCLUDE})
target_link_libraries(dsv2_pcre2 INTERFACE ${DSV2_PCRE2_LIB})
target_compile_definitions(dsv2_pcre2 INTERFACE PCRE2_CODE_UNIT_WIDTH=8)

# CLI11 for the dsv2 command line: header only.
find_path(DSV2_CLI11_INCLUDE CLI/CLI.hpp PATHS ${DSV2_EXTRA_INCLUDE_DIR} REQUIRED)
add_library(dsv2_cli11 INTERFACE)
target_include_directories(dsv2_cli11 SYSTEM INTERFACE ${DSV2_CLI11_INCLUDE})

# spdlog + fmt. Debian ships a compiled spdlog over an external fmt; where no package is installed
# (the GPU machine) both are used header-only from the carried folder.
# A carried folder wins: the GPU machine may have a different spdlog/fmt build than the headers we carry.
if(NOT (DSV2_EXTRA_INCLUDE_DIR AND EXISTS ${DSV2_EXTRA_INCLUDE_DIR}/spdlog))
  find_package(spdlog QUIET)
endif()
if(spdlog_FOUND)
  add_library(dsv2_spdlog INTERFACE)
  target_link_libraries(dsv2_spdlog INTERFACE spdlog::spdlog)
else()
  find_path(DSV2_SPDLOG_INCLUDE spdlog/spdlog.h PATHS ${DSV2_EXTRA_INCLUDE_DIR} REQUIRED)
  add_library(dsv2_spdlog INTERFACE)
  target_include_directories(dsv2_spdlog SYSTEM INTERFACE ${DSV2_SPDLOG_INCLUDE})
  target_compile_definitions(dsv2_spdlog INTERFACE SPDLOG_HEADER_ONLY FMT_HEADER_ONLY SPDLOG_FMT_EXTERNAL)
endif()

# SQLite (C API) for storage; optional so that the engine + CLI still build where it is missing.
find_package(SQLite3 QUIET)
set(DSV2_HAVE_SQLITE ${SQLite3_FOUND})

# cpp-httplib for `dsv2 serve` and the remote client (app/server, app/remote). Debian builds it as a
# shared library whose header only declares; the pkg-config flags (CPPHTTPLIB_OPENSSL_SUPPORT...) must
# match the library's build or the classes' layouts differ. Optional: where it is missing (the GPU
# machine) the server and the client are left out and configure says so.
find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
  pkg_check_modules(DSV2_HTTPLIB QUIET IMPORTED_TARGET cpp-httplib>=0.11)
endif()
if(DSV2_HTTPLIB_FOUND)
  set(DSV2_HAVE_HTTPLIB ON)
  add_library(dsv2_httplib INTERFACE)
  target_link_libraries(dsv2_httplib INTERFACE PkgConfig::DSV2_HTTPLIB Threads::Threads)
  message(STATUS "dsv2: cpp-httplib ${DSV2_HTTPLIB_VERSION}: building `dsv2 serve` and the remote client")
else()
  set(DSV2_HAVE_HTTPLIB OFF)
  message(STATUS "dsv2: cpp-httplib not found (apt install libcpp-httplib-dev): `dsv2 serve` and the remote "
                 "client are not built")
endif()

# doctest for the Qt-free suites (engine, storage), which also run on the GPU machine.
if(DSV2_TESTS)
  find_path(DSV2_DOCTEST_INCLUDE doctest/doctest.h PATHS ${DSV2_EXTRA_INCLUDE_DIR} REQUIRED)
  add_library(dsv2_doctest INTERFACE)
  target_include_directories(dsv2_doctest SYSTEM INTERFACE ${DSV2_DOCTEST_INCLUDE})
endif()

if(DSV2_UI)
  find_package(Qt6 6.4 REQUIRED COMPONENTS Core Gui Widgets Sql Svg Charts Concurrent Test)
endif()
