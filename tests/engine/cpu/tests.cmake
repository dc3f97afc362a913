# engine/cpu: the fp32 reference backend. The oracle suite compares it with HF transformers'
# answers (tests/data/tiny-lite, tests/data/fixtures/*); the others test its pieces.
dsv2_add_doctest(NAME engine_cpu_oracle_test TIMEOUT 900 SOURCES
  cpu/cpu_oracle_test.cpp
)
dsv2_add_doctest(NAME engine_cpu_ops_test SOURCES
  cpu/cpu_ops_test.cpp
  cpu/cpu_backend_test.cpp
)
dsv2_add_doctest(NAME engine_generation_test SOURCES
  cpu/sampler_test.cpp
)
dsv2_add_doctest(NAME engine_generate_test SOURCES
  cpu/engine_generate_test.cpp
)
if(TARGET dsv2)
  dsv2_add_doctest(NAME engine_cli_test SOURCES cpu/cli_engine_test.cpp)
  target_compile_definitions(engine_cli_test PRIVATE DSV2_CLI_PATH="$<TARGET_FILE:dsv2>")
  add_dependencies(engine_cli_test dsv2)
endif()
