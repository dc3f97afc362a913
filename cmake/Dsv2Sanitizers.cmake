# -DDSV2_SANITIZE=ON: the whole build under ASan + UBSan (host code; nvcc device code is untouched).
if(DSV2_SANITIZE)
  set(_dsv2_san -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_compile_options("$<$<COMPILE_LANGUAGE:CXX,C>:${_dsv2_san}>")
  add_link_options(-fsanitize=address,undefined)
endif()
