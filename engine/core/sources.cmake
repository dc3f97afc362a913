# engine/core: the backend seam and factory, the public Engine/Session API, generation (sampling,
# stop strings, streaming events). Status/log/version are listed in engine/CMakeLists.txt.
target_sources(dsv2_engine PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/backend.cpp
  ${CMAKE_CURRENT_LIST_DIR}/engine.cpp
  ${CMAKE_CURRENT_LIST_DIR}/generation.cpp
  ${CMAKE_CURRENT_LIST_DIR}/sampler.cpp
  ${CMAKE_CURRENT_LIST_DIR}/stop_matcher.cpp
)
