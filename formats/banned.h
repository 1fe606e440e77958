/*
 * Functions this project does not use, made a compile error (the idea of
 * git's banned.h).  Every .c of formats/, scanner/ and report/ includes this
 * header last, after every system header, so that the declarations stay
 * intact and only a call written in our code meets the macro: the call then
 * names an undeclared identifier that says why, e.g.
 *
 *   error: 'sorry_sprintf_is_a_banned_function' undeclared
 *
 * It lives in formats/, the lowest library, whose include directory every
 * other folder (and the tests) may use.  tests/scripts/test_banned.sh compiles
 * a use of each function with the project's flags and expects the error, and
 * checks that every .c includes this header last.
 *
 * Why each is banned (../shared/STYLE.md, rule 11), and what to use instead:
 *   strcpy, strcat           unbounded: snprintf, memcpy with a known length
 *   sprintf, vsprintf        unbounded: snprintf, vsnprintf
 *   strtok, strtok_r         rewrite their input and hide empty fields
 *                            (strtok also keeps hidden state): strcspn/strchr
 *   gmtime, localtime,       static result shared across threads: gmtime_r,
 *   ctime, asctime           localtime_r, strftime
 *   ctime_r, asctime_r       fixed buffer with no size: strftime
 *   gets                     unbounded: fgets, getline
 *   mmap                     an image truncated under us would kill the
 *                            process (SIGBUS): pread through ia_source
 */
#ifndef IA_BANNED_H
#define IA_BANNED_H

#define IA_BANNED(func) sorry_##func##_is_a_banned_function

#undef strcpy
#define strcpy(...) IA_BANNED(strcpy)
#undef strcat
#define strcat(...) IA_BANNED(strcat)
#undef sprintf
#define sprintf(...) IA_BANNED(sprintf)
#undef vsprintf
#define vsprintf(...) IA_BANNED(vsprintf)
#undef strtok
#define strtok(...) IA_BANNED(strtok)
#undef strtok_r
#define strtok_r(...) IA_BANNED(strtok_r)
#undef gmtime
#define gmtime(...) IA_BANNED(gmtime)
#undef localtime
#define localtime(...) IA_BANNED(localtime)
#undef ctime
#define ctime(...) IA_BANNED(ctime)
#undef ctime_r
#define ctime_r(...) IA_BANNED(ctime_r)
#undef asctime
#define asctime(...) IA_BANNED(asctime)
#undef asctime_r
#define asctime_r(...) IA_BANNED(asctime_r)
#undef gets
#define gets(...) IA_BANNED(gets)
#undef mmap
#define mmap(...) IA_BANNED(mmap)

#endif
