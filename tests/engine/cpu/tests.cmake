# engine/cpu: the fp32 reference backend. The oracle suite compares it with HF transformers'
# answers (tests/data/tiny-lite, tests/data/fixtures/*); the others test its pieces.
dsv2_add_doctest(NAME engine_cpu_oracle_test TIMEOUT 900 SOURCES
  cpu/cpu_oracle_test.cpp
)
dsv2_add_doctest(NAME engine_cpu_ops_test SOURCES
  cpu/cpu_ops_test.cpp
)
dsv2_add_doctest(NAME engine_generation_test SOURCES
  cpu/sampler_test.cpp
)
dsv2_add_doctest(NAME engine_generate_test SOURCES
  cpu/engine_generate_test.cpp
)
