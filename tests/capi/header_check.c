/* larder.h must compile as strict C99 (-std=c99 -pedantic -Werror). */
#include "larder.h"

int larder_header_check_c(void) {
  larder_value v = LARDER_VALUE_INIT;
  larder_stats s;
  s.struct_size = sizeof s;
  return (int)v.size + (int)s.struct_size + LARDER_OK;
}
