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


# Read-only opens anywhere under these are fine (the loader, locale, the
# sanitizers' view of the process; glibc's malloc reads overcommit_memory
# when it trims arenas).
SCAN_ALLOWED_PREFIXES = ("/lib", "/usr/", "/etc/ld.so", "/proc/self/", "/sys/", "/dev/urandom",
                         "/etc/localtime", "/proc/sys/vm/overcommit_memory")


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


def _guid(text):
    a, b, c, d, e = text.split("-")
    return struct.pack("<IHH", int(a, 16), int(b, 16), int(c, 16)) + bytes.fromhex(d + e)


def vhdx_make_differencing(path, relative_path):
    """Turn a dynamic VHDX made by qemu-img into a differencing one whose
    parent locator holds relative_path (as the VHDX specification lays the
    metadata region, parameters and locator out)."""
    meta_guid = _guid("8B7CA206-4790-4B9A-B8FE-575F050F886E")
    params_guid = _guid("CAA16737-FA36-4D43-B3B6-33F0AA44E76B")
    loc_guid = _guid("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C")
    loctype = _guid("B04AEFB7-D19E-4A81-B789-25B8E9445913")
    with open(path, "r+b") as f:
        d = bytearray(f.read())
        r = 192 * 1024
        meta = None
        for i in range(struct.unpack("<I", d[r + 8:r + 12])[0]):
            e = r + 16 + 32 * i
            if d[e:e + 16] == meta_guid:
                meta = struct.unpack("<Q", d[e + 16:e + 24])[0]
        count = struct.unpack("<H", d[meta + 10:meta + 12])[0]
        end = 0
        for i in range(count):
            e = meta + 32 + 32 * i
            off, length = struct.unpack("<II", d[e + 16:e + 24])
            end = max(end, off + length)
            if d[e:e + 16] == params_guid:  # HasParent
                d[meta + off + 4:meta + off + 8] = struct.pack("<I", 2)
        kv = [("parent_linkage", "{00000000-0000-0000-0000-000000000000}"),
              ("relative_path", relative_path)]
        base = 20 + 12 * len(kv)
        body = ents = b""
        for k, v in kv:
            kb, vb = k.encode("utf-16-le"), v.encode("utf-16-le")
            ents += struct.pack("<IIHH", base + len(body), base + len(body) + len(kb), len(kb), len(vb))
            body += kb + vb
        loc = loctype + struct.pack("<HH", 0, len(kv)) + ents + body
        off = (end + 7) & ~7
        d[meta + off:meta + off + len(loc)] = loc
        e = meta + 32 + 32 * count
        d[e:e + 32] = loc_guid + struct.pack("<IIII", off, len(loc), 4 | 2, 0)
        d[meta + 10:meta + 12] = struct.pack("<H", count + 1)
        f.seek(0)
        f.write(d)


# --- strace -f -y logs, where every successful open shows the path the
# kernel resolved (`= 5</abs/path>`), so openat(dirfd, ...) and reopens via
# /proc/self/fd are judged by what they really opened (an O_PATH open that
# is then reopened through /proc/self/fd/N shows up with the real file). ---

# The syscalls the hostile tests trace (strace -e trace=...).
TRACED = ("open,openat,openat2,creat,socket,connect,socketpair,execve,mkdir,mkdirat,"
          "unlink,unlinkat,rename,renameat,renameat2,truncate,link,linkat,symlink,"
          "symlinkat,mknod,mknodat,chmod,fchmodat,utimensat,flock")
# Successful calls of these change the file system: allowed only beneath the
# allowed (database and spool) directories.
MUTATING = ("creat", "mkdir", "mkdirat", "unlink", "unlinkat", "rename", "renameat",
            "renameat2", "truncate", "link", "linkat", "symlink", "symlinkat", "mknod",
            "mknodat", "chmod", "fchmodat", "utimensat")
WRITE_FLAGS = ("O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND")


def _unescape(s):
    """strace's C-style escapes back to bytes, then to an os path string."""
    return os.fsdecode(s.encode("latin-1", "replace").decode("unicode_escape").encode("latin-1", "replace"))


def _under(path, dirs):
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in dirs)


def _path_args(line, cwd):
    """The path arguments of a traced call, made absolute: a relative path is
    taken against its directory descriptor (-y shows it) or the cwd."""
    args = line.split("(", 1)[1]
    out = []
    base = cwd
    for m in re.finditer(r'(\d+<((?:[^>\\]|\\.)*)>|AT_FDCWD)?(?:, )?"((?:[^"\\]|\\.)*)"', args):
        if m.group(2) is not None:
            base = _unescape(m.group(2))
        elif m.group(1) == "AT_FDCWD":
            base = cwd
        p = _unescape(m.group(3))
        p = os.path.normpath(p if p.startswith("/") else os.path.join(base, p))
        out.append(os.path.join(os.path.realpath(os.path.dirname(p)), os.path.basename(p)))
    return out


def _calls(log):
    """The lines of an strace -f log, with each call's "<unfinished ...>" and
    "<... resumed>" halves joined into one line."""
    pending = {}
    for line in open(log, errors="replace"):
        line = line.rstrip("\n")
        m = re.match(r"(\d+) +(.*) <unfinished \.\.\.>$", line)
        if m:
            pending[m.group(1)] = m.group(1) + " " + m.group(2)
            continue
        m = re.match(r"(\d+) +<\.\.\. \w+ resumed>(.*)$", line)
        if m and m.group(1) in pending:
            yield pending.pop(m.group(1)) + m.group(2)
            continue
        yield line


def judge_scan(log, roots, allowed, forbidden, binary, cwd=None):
    """Complaints about an strace -f -y log (TRACED calls) of `imgaudit scan`
    or `imgaudit map`: sockets, programs executed (but the first execve, of
    binary), files opened for I/O outside the roots and the allowed
    directories (the database, the spool), FIFOs, sockets and devices opened
    for I/O anywhere, and any write, creation, removal, rename or lock outside
    the allowed directories (the roots are read-only)."""
    import stat
    cwd = cwd or os.getcwd()
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
    for line in _calls(log):
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
        call = re.match(r"(?:\d+ +)?(\w+)\(", line)
        call = call.group(1) if call else ""
        if call in MUTATING:
            if re.search(r"= 0$", line) and not all(_under(p, allowed) for p in _path_args(line, cwd)):
                bad.append("changed the file system outside the allowed directories: " + line)
            continue
        if call == "flock":
            m = re.search(r"flock\(\d+<((?:[^>\\]|\\.)*)>", line)
            if re.search(r"= 0$", line) and not (m and _under(_unescape(m.group(1)), allowed)):
                bad.append("took a lock outside the allowed directories: " + line)
            continue
        if call not in ("open", "openat", "openat2", "creat"):
            continue
        m = re.search(r"= \d+<(.*)>$", line)
        if not m:
            continue  # failed, or unfinished/resumed pieces
        if "O_PATH" in line:
            continue
        path = _unescape(m.group(1))
        if path.endswith(" (deleted)"):
            path = path[:-len(" (deleted)")]
        if any(f in line for f in WRITE_FLAGS) and not _under(path, allowed):
            bad.append("opened a file for writing outside the allowed directories: " + line)
            continue
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
    if cmd == "traced":
        print(TRACED)
    elif cmd == "patch":
        patch(sys.argv[2], int(sys.argv[3], 0), sys.argv[4], *[int(v, 0) for v in sys.argv[5:]])
    elif cmd == "qcow2-ext":
        qcow2_set_ext(sys.argv[2], int(sys.argv[3], 0), sys.argv[4].encode())
    elif cmd == "vhdx-diff":
        vhdx_make_differencing(sys.argv[2], sys.argv[3])
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
