/*
 * Parsing sizes the way qemu-img does (qemu_strtosz), so that
 * `imgaudit map -s/-l` accepts exactly what `qemu-img map` accepts.
 */
#ifndef IA_SIZE_H
#define IA_SIZE_H

#include <stdbool.h>
#include <stdint.h>

/*
 * Parse s: a decimal integer with an optional B/K/M/G/T/P/E suffix (powers of
 * 1024, any case), a fraction only with a scaling suffix ("1.5k"), or 0x hex.
 * Returns 0 and *val, -EINVAL for malformed input, -ERANGE past 2^64.
 * *hex_suffix is set when hex was combined with a suffix (qemu warns).
 */
int ia_parse_size(const char *s, uint64_t *val, bool *hex_suffix);

#endif
