/*
 * Opening an image with its whole backing chain.
 *
 * Backing names are resolved the way qemu resolves them (relative names
 * against the directory of the image that holds them), through the context's
 * resolver, which applies the caller's policy.  The backing format comes from
 * the header; when the header records none, the backing file is probed (and
 * the image remembers it was probed); a file recorded as raw is never probed.
 * Loops and chains deeper than the cap are refused.
 */
#ifndef IA_CHAIN_H
#define IA_CHAIN_H

#include "image.h"

/*
 * Open name (through ctx->resolver, as IA_REF_TOP) with format fmt (NULL:
 * probe), then its backing chain.  In a lenient context a broken link ends
 * the chain and is kept in backing_err of the image that holds it; otherwise
 * it fails the open.
 */
int ia_chain_open(const struct ia_open_ctx *ctx, const char *name, const char *fmt,
                  struct ia_image **top, struct ia_error *err);

/* Open one image over file (taken over, freed on failure) with fmt (NULL: probe). */
int ia_image_open(const struct ia_open_ctx *ctx, struct ia_file *file, const char *fmt,
                  struct ia_image **out, struct ia_error *err);

/* Free an image and everything below it in its chain; NULL-safe. */
void ia_image_free(struct ia_image *img);

/*
 * The plain file-system resolver: names are opened as qemu opens them
 * (relative to the referencing image's directory, or to the current directory
 * for qcow2 data files), never a protocol or json: name, never anything but a
 * regular file.  With roots given, every target must resolve beneath one of
 * them, and never through a symlink.
 */
struct ia_fs_policy {
        const char *const *roots; /* NULL-terminated allowed roots, or NULL for none */
        bool data_file_cwd;       /* qcow2 data files relative to the CWD (qemu does) */
};

void ia_fs_resolver_init(struct ia_resolver *r, const struct ia_fs_policy *policy);

/* Names looked at per directory when a parent is looked up by identity. */
#define IA_ID_DIR_CAP 4096

/* Is name a VirtualBox disk's (ends in ".vdi", any case)? */
bool ia_vdi_file_name(const char *name);

/* dir and name joined with one '/' (malloc'd), or NULL. */
char *ia_path_join_dir(const char *dir, const char *name);

/*
 * qemu's path_combine(): base_path's directory joined with filename, or
 * filename itself when it is absolute.  Returns a malloc'd string or NULL.
 */
char *ia_path_combine(const char *base_path, const char *filename);

/* Does name look like a protocol or json: name ("json:", "nbd:", "http://", ...)? */
bool ia_name_is_protocol(const char *name);

#endif
