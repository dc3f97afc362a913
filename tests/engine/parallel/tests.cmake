# engine/parallel: expert placement, layouts, bytes per token and the memory plan across devices
# (host logic, no GPU).
dsv2_add_doctest(NAME engine_parallel_test SOURCES
  parallel/expert_placement_test.cpp
  parallel/parallel_plan_test.cpp
)
