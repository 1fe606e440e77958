/*
 * Text found inside image metadata: parent locators of VHD and VHDX store
 * file names as UTF-16 and as Windows paths.  One decoder for all drivers.
 */
#ifndef IA_TEXT_H
#define IA_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Decode len bytes of UTF-16 (big-endian if big_endian) into UTF-8 in out
 * (capacity cap, NUL-terminated), stopping at a NUL; lone surrogates become
 * U+FFFD.  Returns the length, or -1 if out is too small.
 */
long ia_utf16_to_utf8(const uint8_t *in, size_t len, bool big_endian, char *out, size_t cap);

/*
 * Turn a Windows relative path (".\dir\name") into a POSIX one in place:
 * backslashes become slashes, leading "./" are dropped.  Returns the new length.
 */
size_t ia_windows_relative_path(char *s, size_t n);

#endif
