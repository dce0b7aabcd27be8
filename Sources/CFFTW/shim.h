// Shim so a missing system package fails with a message naming the Debian package.
#if __has_include(<fftw3.h>)
#include <fftw3.h>
#else
#error "fftw3.h not found: install the Debian package libfftw3-dev (apt-get install libfftw3-dev)"
#endif
