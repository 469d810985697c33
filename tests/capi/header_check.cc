// larder.h must compile as C++ too, with its declarations in extern "C".
#include "larder.h"

extern "C" int larder_header_check_cxx() {
  larder_value v = LARDER_VALUE_INIT;
  return static_cast<int>(v.size) + LARDER_OK;
}
