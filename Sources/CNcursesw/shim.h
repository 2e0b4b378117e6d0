#ifndef LOUPE_NCURSES_SHIM_H
#define LOUPE_NCURSES_SHIM_H
// The one C header Loupe sees of ncurses. Macros and globals that Swift cannot import
// (A_BOLD, A_REVERSE, ACS_*, stdscr, COLORS) are wrapped in static inline functions.
#define NCURSES_WIDECHAR 1
#include <locale.h>
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

#endif
