#ifndef LOUPE_NCURSES_SHIM_H
#define LOUPE_NCURSES_SHIM_H
// The one C header Loupe sees of ncurses. Macros and globals that Swift cannot import
// (A_BOLD, A_REVERSE, ACS_*, stdscr, COLORS, mouse masks, stdin/stdout) are wrapped in static
// inline functions.
#define NCURSES_WIDECHAR 1
#include <locale.h>
#include <stdio.h>
#include <ncursesw/curses.h>

static inline WINDOW *loupe_stdscr(void) { return stdscr; }
static inline int loupe_colors(void) { return COLORS; }
static inline int loupe_color_pairs(void) { return COLOR_PAIRS; }
static inline int loupe_lines(void) { return LINES; }
static inline int loupe_cols(void) { return COLS; }
static inline attr_t loupe_a_bold(void) { return A_BOLD; }
static inline attr_t loupe_a_reverse(void) { return A_REVERSE; }
static inline attr_t loupe_a_underline(void) { return A_UNDERLINE; }
static inline attr_t loupe_a_dim(void) { return A_DIM; }
static inline attr_t loupe_color_pair(int n) { return COLOR_PAIR(n); }
static inline chtype loupe_acs_hline(void) { return ACS_HLINE; }
static inline chtype loupe_acs_vline(void) { return ACS_VLINE; }

// The C standard streams, which Swift 6 rejects as global mutable state.
static inline FILE *loupe_stdin(void) { return stdin; }
static inline FILE *loupe_stdout(void) { return stdout; }

// Columns a character takes in the current locale, as ncurses counts them (wchar.h declares
// wcwidth only under _XOPEN_SOURCE).
extern int wcwidth(wchar_t);
static inline int loupe_wcwidth(wchar_t c) { return wcwidth(c); }

// Colour pairs above 32767 need the extended-colour calls where ncurses has them.
static inline int loupe_init_pair(int pair, int fg, int bg) {
#if NCURSES_EXT_COLORS
    return init_extended_pair(pair, fg, bg);
#else
    return init_pair((short)pair, (short)fg, (short)bg);
#endif
}

static inline int loupe_setcchar(cchar_t *cell, const wchar_t *text, attr_t attrs, int pair) {
#if NCURSES_EXT_COLORS
    return setcchar(cell, text, attrs, (short)(pair > 32767 ? 0 : pair), &pair);
#else
    return setcchar(cell, text, attrs, (short)pair, NULL);
#endif
}

#endif
