"""Helpers for the hostile-input tests: patch image headers, and judge an
strace log (what did the process open, and did it create sockets?)."""
import os
import re
import struct
import sys


def patch(path, offset, fmt, *values):
    """Write struct-packed values at offset."""
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(struct.pack(fmt, *values))


def qcow2_set_ext(path, ext_type, payload):
    """Replace (or add) a qcow2 header extension, keeping the others."""
    with open(path, "r+b") as f:
        h = bytearray(f.read(65536))
        version = struct.unpack(">I", h[4:8])[0]
        off = struct.unpack(">I", h[100:104])[0] if version >= 3 else 72
        exts = []
        while off + 8 <= len(h):
            t, n = struct.unpack(">II", h[off:off + 8])
            if t == 0:
                break
            if t != ext_type:
                exts.append((t, bytes(h[off + 8:off + 8 + n])))
            off += 8 + (n + 7) // 8 * 8
        exts.append((ext_type, payload))
        start = struct.unpack(">I", h[100:104])[0] if version >= 3 else 72
        out = b""
        for t, d in exts:
            out += struct.pack(">II", t, len(d)) + d + b"\0" * ((8 - len(d) % 8) % 8)
        out += b"\0" * 8
        f.seek(start)
        f.write(out)


ALLOWED_PREFIXES = ("/lib", "/usr/", "/etc/ld.so", "/proc/self/", "/sys/", "/dev/urandom",
                    "/etc/localtime")
# glibc's malloc reads this when it trims arenas (threads).
SCAN_ALLOWED_PREFIXES = ALLOWED_PREFIXES + ("/proc/sys/vm/overcommit_memory",)


def crc32c(data):
    """CRC-32C (Castagnoli), as VHDX checksums use."""
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    crc = 0xFFFFFFFF
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def vhdx_fix_region_checksums(path):
    """Recompute the checksums of both VHDX region tables (at 192 and 256 KiB)."""
    with open(path, "r+b") as f:
        for off in (192 * 1024, 256 * 1024):
            f.seek(off)
            t = bytearray(f.read(65536))
            t[4:8] = b"\0\0\0\0"
            t[4:8] = struct.pack("<I", crc32c(bytes(t)))
            f.seek(off)
            f.write(t)


def judge(log, root, forbidden):
    """Return a list of complaints about an strace -f log."""
    root = os.path.realpath(root)
    bad = []
    for line in open(log, errors="replace"):
        line = line.strip()
        m = re.search(r"\b(socket|connect)\(", line)
        if m and "= -1" not in line:
            bad.append("created a socket: " + line)
            continue
        m = re.search(r"\b(open|openat|openat2)\((?:[^,]*, )?\"((?:[^\"\\]|\\.)*)\"", line)
        if not m:
            continue
        path = m.group(2).encode().decode("unicode_escape")
        failed = re.search(r"= -1 ", line) is not None
        o_path = "O_PATH" in line
        if failed:
            continue
        if path.startswith(ALLOWED_PREFIXES):
            continue
        if m.group(1) == "openat2" or (m.group(1) == "openat" and not line.split("(", 1)[1].startswith("AT_FDCWD")):
            # Relative to a directory fd: openat2 from a root fd, RESOLVE_BENEATH.
            if "RESOLVE_BENEATH" in line or not path.startswith("/"):
                if any(f in path for f in forbidden) and not o_path:
                    bad.append("opened a forbidden file: " + line)
                continue
        full = os.path.realpath(path if path.startswith("/") else os.path.join(root, path))
        if any(full == os.path.realpath(f) or path == f for f in forbidden) and not o_path:
            bad.append("opened a forbidden file for I/O: " + line)
        if not (full == root or full.startswith(root + "/")) and not o_path:
            bad.append("opened a file outside the root: " + line)
    return bad


# --- scan: strace -f -y logs, where every successful open shows the path the
# kernel resolved (`= 5</abs/path>`), so openat(dirfd, ...) and reopens via
# /proc/self/fd are judged by what they really opened. ---

def _unescape(s):
    """strace's C-style escapes back to bytes, then to an os path string."""
    return os.fsdecode(s.encode("latin-1", "replace").decode("unicode_escape").encode("latin-1", "replace"))


def _under(path, dirs):
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in dirs)


def judge_scan(log, roots, allowed, forbidden, binary):
    """Complaints about an strace -f -y log of `imgaudit scan`: sockets,
    programs executed (but the first execve, of binary), files opened for I/O
    outside the roots and the allowed directories (the database, the spool),
    and FIFOs, sockets and devices opened for I/O anywhere."""
    import stat
    roots = [os.path.realpath(r) for r in roots]
    allowed = [os.path.realpath(a) for a in allowed]
    forbidden = {os.path.realpath(f) for f in forbidden}
    ancestors = set()
    for r in roots + allowed:
        while r not in ("/", ""):
            r = os.path.dirname(r)
            ancestors.add(r)
    bad = []
    execs = 0
    for line in open(log, errors="replace"):
        line = line.rstrip("\n")
        if re.search(r"\b(socket|connect|socketpair)\(", line):
            if not re.search(r"= -1 ", line):
                bad.append("created a socket: " + line)
            continue
        if re.search(r"\bexecve\(", line):
            if re.search(r"= 0$", line):
                execs += 1
                m = re.search(r'execve\("((?:[^"\\]|\\.)*)"', line)
                if execs > 1 or not m or os.path.realpath(_unescape(m.group(1))) != os.path.realpath(binary):
                    bad.append("executed a program: " + line)
            continue
        if not re.search(r"\b(open|openat|openat2)\(", line):
            continue
        m = re.search(r"= \d+<(.*)>$", line)
        if not m:
            continue  # failed, or unfinished/resumed pieces
        if "O_PATH" in line:
            continue
        path = _unescape(m.group(1))
        if path.endswith(" (deleted)"):
            path = path[:-len(" (deleted)")]
        if (path.startswith(SCAN_ALLOWED_PREFIXES) or re.match(r"/proc/\d+/", path)) and path not in forbidden:
            continue
        kind = None
        try:
            st = os.stat(path)
            if stat.S_ISFIFO(st.st_mode) or stat.S_ISSOCK(st.st_mode) or \
               stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                kind = "special"
            elif stat.S_ISDIR(st.st_mode):
                kind = "dir"
        except OSError:
            pass
        if kind == "special" or path in forbidden:
            bad.append("opened a FIFO, socket, device or forbidden file for I/O: " + line)
            continue
        if _under(path, roots) or _under(path, allowed):
            continue
        if kind == "dir" and path in ancestors:
            continue
        bad.append("opened a file outside the roots: " + line)
    return bad


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "judge":
        problems = judge(sys.argv[2], sys.argv[3], sys.argv[4:])
        for p in problems:
            print(p)
        sys.exit(1 if problems else 0)
    elif cmd == "patch":
        patch(sys.argv[2], int(sys.argv[3], 0), sys.argv[4], *[int(v, 0) for v in sys.argv[5:]])
    elif cmd == "qcow2-ext":
        qcow2_set_ext(sys.argv[2], int(sys.argv[3], 0), sys.argv[4].encode())
    elif cmd == "vhdx-fix-region-checksums":
        vhdx_fix_region_checksums(sys.argv[2])
    elif cmd == "judge-scan":
        # judge-scan LOG BINARY [--root DIR]... [--allow DIR]... [--forbid FILE]...
        opts = {"--root": [], "--allow": [], "--forbid": []}
        args = sys.argv[4:]
        for i in range(0, len(args) - 1, 2):
            opts[args[i]].append(args[i + 1])
        problems = judge_scan(sys.argv[2], opts["--root"], opts["--allow"], opts["--forbid"], sys.argv[3])
        for p in problems:
            print(p)
        sys.exit(1 if problems else 0)
    else:
        sys.exit("unknown command " + cmd)
