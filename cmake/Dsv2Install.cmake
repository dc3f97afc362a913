# The installed layout and the Debian package (CPack DEB). Included by the top CMakeLists.txt after
# every target exists. The executables, the .desktop entry, the SVG icon and the demo model are
# installed by app/CMakeLists.txt; this file adds what only an installed system needs: PNG icons,
# AppStream metainfo, man pages, copyright and changelog, and (with CUDA) a private copy of the CUDA
# runtime and cuBLAS. docs/packaging.md explains each choice and gives the measured figures.
#
#   cmake -S . -B build/package -G Ninja -DCMAKE_BUILD_TYPE=Release -DDSV2_TESTS=OFF \
#         -DCMAKE_INSTALL_PREFIX=/usr -DDSV2_BUNDLE_CUDA=ON
#   ninja -C build/package && (cd build/package && cpack)   # scripts/package-deb.sh does this, and checks

include(GNUInstallDirs)

set(_dsv2_pkg ${PROJECT_SOURCE_DIR}/packaging)
set(_dsv2_pkg_out ${PROJECT_BINARY_DIR}/packaging)
file(MAKE_DIRECTORY ${_dsv2_pkg_out})

# ---- CUDA runtime and cuBLAS, shipped privately -------------------------------------------------
# NVIDIA's CUDA 13 packages are not in Debian, so a Depends on them cannot be satisfied from a Debian
# mirror. The three libraries the binaries need (Attachment A of the CUDA EULA lists them as
# redistributable) go to /usr/lib/<triplet>/dsv2-chat, found through a RUNPATH relative to the binary.
# The driver (libcuda.so) is never shipped: without it the engine falls back to the CPU backend.
# Off by default (a developer's `ninja install` links against the toolkit it has); the package build
# (scripts/package-deb.sh) turns it on.
option(DSV2_BUNDLE_CUDA "Install the CUDA runtime and cuBLAS next to the binaries (for the .deb)" OFF)
set(DSV2_PRIVATE_LIBDIR ${CMAKE_INSTALL_LIBDIR}/dsv2-chat)

if(DSV2_CUDA AND DSV2_BUNDLE_CUDA)
  set(_dsv2_cuda_major ${CUDAToolkit_VERSION_MAJOR})
  foreach(_lib cudart cublas cublasLt)
    if(NOT TARGET CUDA::${_lib})
      message(FATAL_ERROR "DSV2_BUNDLE_CUDA: the CUDA toolkit has no ${_lib} library; "
                          "configure with -DDSV2_BUNDLE_CUDA=OFF to install without it")
    endif()
    get_target_property(_loc CUDA::${_lib} IMPORTED_LOCATION)
    file(REAL_PATH "${_loc}" _real)
    # Installed under its SONAME (what the loader looks for), as a plain file: no symlink farm.
    install(FILES "${_real}" DESTINATION ${DSV2_PRIVATE_LIBDIR} RENAME lib${_lib}.so.${_dsv2_cuda_major})
  endforeach()
  # $ORIGIN: the binaries stay relocatable (a staged tree, another prefix). libcublas itself carries
  # RUNPATH $ORIGIN, so it finds libcublasLt in the same folder.
  set(_dsv2_rpath "$ORIGIN/../${DSV2_PRIVATE_LIBDIR}")
  foreach(_exe dsv2 dsv2-chat)
    if(TARGET ${_exe})
      set_target_properties(${_exe} PROPERTIES INSTALL_RPATH "${_dsv2_rpath}")
    endif()
  endforeach()

  # The EULA under which they are redistributed goes into the copyright file.
  file(GLOB _dsv2_cuda_eula
       "${CUDAToolkit_LIBRARY_ROOT}/dist-info/nvidia_cuda_runtime*/licenses/License.txt"
       "${CUDAToolkit_LIBRARY_ROOT}/EULA.txt" "${CUDAToolkit_LIBRARY_ROOT}/../EULA.txt")
  if(NOT _dsv2_cuda_eula)
    message(FATAL_ERROR "DSV2_BUNDLE_CUDA: no CUDA EULA found under ${CUDAToolkit_LIBRARY_ROOT} "
                        "(EULA.txt); the libraries may only be shipped with it")
  endif()
  list(GET _dsv2_cuda_eula 0 _dsv2_cuda_eula)
  message(STATUS "dsv2: shipping CUDA ${CUDAToolkit_VERSION} runtime + cuBLAS privately in "
                 "${CMAKE_INSTALL_PREFIX}/${DSV2_PRIVATE_LIBDIR}")
endif()

# ---- Desktop integration ------------------------------------------------------------------------
if(DSV2_UI)
  install(FILES ${_dsv2_pkg}/org.dsv2chat.dsv2chat.metainfo.xml DESTINATION ${CMAKE_INSTALL_DATADIR}/metainfo)

  # PNG renderings of the SVG for desktops and menus that do not draw SVG icons.
  find_program(DSV2_RSVG_CONVERT rsvg-convert)
  if(DSV2_RSVG_CONVERT)
    set(_dsv2_pngs)
    foreach(_size 16 24 32 48 64 128 256)
      set(_png ${_dsv2_pkg_out}/icons/${_size}/dsv2-chat.png)
      add_custom_command(OUTPUT ${_png}
        COMMAND ${CMAKE_COMMAND} -E make_directory ${_dsv2_pkg_out}/icons/${_size}
        COMMAND ${DSV2_RSVG_CONVERT} -w ${_size} -h ${_size} -o ${_png} ${PROJECT_SOURCE_DIR}/resources/icons/dsv2-chat.svg
        DEPENDS ${PROJECT_SOURCE_DIR}/resources/icons/dsv2-chat.svg
        COMMENT "Rendering the ${_size}x${_size} icon")
      list(APPEND _dsv2_pngs ${_png})
      install(FILES ${_png} DESTINATION ${CMAKE_INSTALL_DATADIR}/icons/hicolor/${_size}x${_size}/apps)
    endforeach()
    add_custom_target(dsv2_icons ALL DEPENDS ${_dsv2_pngs})
  else()
    message(STATUS "dsv2: rsvg-convert not found (librsvg2-bin): installing the SVG icon only")
  endif()
endif()

# ---- Documentation: man pages, copyright, changelog ---------------------------------------------
# Debian wants man pages and the changelog compressed with gzip -9n (no timestamp: reproducible).
find_program(DSV2_GZIP gzip REQUIRED)
set(_dsv2_man_pages dsv2.1)
if(DSV2_UI)
  list(APPEND _dsv2_man_pages dsv2-chat.1)
endif()
set(_dsv2_gz)
foreach(_doc IN LISTS _dsv2_man_pages ITEMS changelog)
  if(_doc STREQUAL "changelog")
    set(_src ${_dsv2_pkg}/changelog)
  else()
    set(_src ${_dsv2_pkg}/man/${_doc})
  endif()
  add_custom_command(OUTPUT ${_dsv2_pkg_out}/${_doc}.gz
    COMMAND ${DSV2_GZIP} -9nc ${_src} > ${_dsv2_pkg_out}/${_doc}.gz
    DEPENDS ${_src} VERBATIM)
  list(APPEND _dsv2_gz ${_dsv2_pkg_out}/${_doc}.gz)
endforeach()
add_custom_target(dsv2_docs_gz ALL DEPENDS ${_dsv2_gz})
foreach(_doc IN LISTS _dsv2_man_pages)
  install(FILES ${_dsv2_pkg_out}/${_doc}.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
endforeach()

set(_dsv2_docdir ${CMAKE_INSTALL_DATADIR}/doc/dsv2-chat)
install(FILES ${_dsv2_pkg_out}/changelog.gz DESTINATION ${_dsv2_docdir})
# copyright = our part + the CUDA EULA when its libraries are inside.
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${_dsv2_pkg}/copyright)
file(READ ${_dsv2_pkg}/copyright _dsv2_copyright)
if(DSV2_CUDA AND DSV2_BUNDLE_CUDA)
  file(READ ${_dsv2_cuda_eula} _dsv2_eula_text)
  string(REGEX REPLACE "\r" "" _dsv2_eula_text "${_dsv2_eula_text}")
  # DEP-5 license text: every line indented, empty lines as " .".
  string(REGEX REPLACE "\n[ \t]*\n" "\n.\n" _dsv2_eula_text "${_dsv2_eula_text}")
  string(REGEX REPLACE "\n[ \t]*\n" "\n.\n" _dsv2_eula_text "${_dsv2_eula_text}")
  string(REGEX REPLACE "\n" "\n " _dsv2_eula_text "${_dsv2_eula_text}")
  string(APPEND _dsv2_copyright
    "\nFiles: usr/lib/*/dsv2-chat/libcudart.so.* usr/lib/*/dsv2-chat/libcublas.so.* usr/lib/*/dsv2-chat/libcublasLt.so.*\n"
    "Copyright: NVIDIA Corporation\n"
    "License: NVIDIA-CUDA-EULA\n"
    " Redistributable under Attachment A of the agreement below (CUDA ${CUDAToolkit_VERSION}).\n"
    " .\n ${_dsv2_eula_text}\n")
endif()
file(WRITE ${_dsv2_pkg_out}/copyright "${_dsv2_copyright}")
install(FILES ${_dsv2_pkg_out}/copyright DESTINATION ${_dsv2_docdir})

# ---- CPack DEB ----------------------------------------------------------------------------------
set(DSV2_PACKAGE_MAINTAINER "dsv2-chat developers <dsv2-chat@example.org>" CACHE STRING
    "Maintainer field of the .deb (set a real address before publishing)")
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME dsv2-chat)
set(CPACK_PACKAGE_VENDOR "dsv2-chat developers")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "local chat with DeepSeek-V2-family models")
# Debian wants the long description within 80 columns.
set(CPACK_PACKAGE_DESCRIPTION
    "dsv2-chat is a Qt 6 desktop application, with the command line tool dsv2,\n"
    "for chatting locally with DeepSeek-V2-family models on NVIDIA GPUs through\n"
    "its own CUDA inference engine, with a plain CPU backend as the fallback.\n"
    "It shows which experts each token is routed to and how the latent KV cache\n"
    "fills, and keeps the chat history in SQLite. A small demo model is included.")
string(REPLACE ";" "" CPACK_PACKAGE_DESCRIPTION "${CPACK_PACKAGE_DESCRIPTION}")
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${DSV2_PACKAGE_MAINTAINER}")
set(CPACK_DEBIAN_PACKAGE_SECTION science)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# Qt, spdlog, fmt, PCRE2, SQLite come from dpkg-shlibdeps. It cannot see what is loaded at run time:
# the xcb/offscreen platform plugins (libqt6gui6) and the SVG icon engine (libqt6svg6) live in
# packages it already finds; Wayland sessions want the Wayland platform plugin.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "qt6-wayland")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
# gzip: lintian in Debian 12 calls a zstd data member malformed (an error, though dpkg reads it), and
# xz spends minutes on cuBLAS's 540 MB of already-compressed GPU code for 8% less (figures in
# docs/packaging.md).
set(CPACK_DEBIAN_COMPRESSION_TYPE gzip)
include(CPack)
