/*
 * libarchive's <archive.h>, reached past our own scanner/archive.h.
 *
 * scanner/ is on the include path and holds archive.h (the imgaudit archive
 * API), which hides libarchive's header of the same name.  Include this file
 * as <la/la_archive.h> (angle brackets, so that it is found through the
 * scanner/ include directory): #include_next then resumes the search after
 * that directory and finds libarchive's header.
 */
#ifndef IA_LA_ARCHIVE_H
#define IA_LA_ARCHIVE_H

#include_next <archive.h>

#endif
