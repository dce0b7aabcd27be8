// Shim so a missing system package fails with a message naming the Debian package.
#if __has_include(<zlib.h>)
#include <zlib.h>
#else
#error "zlib.h not found: install the Debian package zlib1g-dev (apt-get install zlib1g-dev)"
#endif
