# Debian's libcaf-dev ships no CMake config and no pkg-config file, so find the
# three libraries ourselves and expose the upstream target names.
find_path(CAF_INCLUDE_DIR caf/all.hpp)
foreach(part core io openssl)
  find_library(CAF_${part}_LIBRARY NAMES caf_${part})
  if(CAF_${part}_LIBRARY AND NOT TARGET CAF::${part})
    add_library(CAF::${part} SHARED IMPORTED)
    set_target_properties(CAF::${part} PROPERTIES
      IMPORTED_LOCATION "${CAF_${part}_LIBRARY}"
      INTERFACE_INCLUDE_DIRECTORIES "${CAF_INCLUDE_DIR}")
  endif()
endforeach()
if(TARGET CAF::io)
  set_property(TARGET CAF::io APPEND PROPERTY INTERFACE_LINK_LIBRARIES CAF::core)
endif()
if(TARGET CAF::openssl)
  set_property(TARGET CAF::openssl APPEND PROPERTY INTERFACE_LINK_LIBRARIES CAF::io)
endif()
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(CAF REQUIRED_VARS CAF_INCLUDE_DIR CAF_core_LIBRARY CAF_io_LIBRARY)
