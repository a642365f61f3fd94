/* log.h - logging for weft programs.
 *
 * Library-like code logs only at debug level; the caller logs once with
 * context. log_error_errno(r, ...) logs and returns r so that
 * `return log_error_errno(r, "open %s: %m", path)` reads naturally.
 * "%m" is supported and prints strerror of the errno passed in.
 */
#ifndef WEFT_LOG_H
#define WEFT_LOG_H

#include "lib/util.h"

enum weft_log_level { WEFT_LOG_DEBUG, WEFT_LOG_INFO, WEFT_LOG_WARN, WEFT_LOG_ERROR };

/* Set the program name shown in messages and the minimum level shown.
 * WEFT_LOG=debug in the environment lowers the level to debug. */
void weft_log_init(const char *progname, enum weft_log_level level);
void weft_log_set_level(enum weft_log_level level);
bool weft_log_enabled(enum weft_log_level level);

/* err is a negative (or positive) errno for %m, or 0. Returns -abs(err). */
int weft_log(enum weft_log_level level, int err, const char *fmt, ...) PRINTF_LIKE(3, 4);

#define log_debug(...) (weft_log_enabled(WEFT_LOG_DEBUG) ? weft_log(WEFT_LOG_DEBUG, 0, __VA_ARGS__) : 0)
#define log_info(...) weft_log(WEFT_LOG_INFO, 0, __VA_ARGS__)
#define log_warn(...) weft_log(WEFT_LOG_WARN, 0, __VA_ARGS__)
#define log_error(...) weft_log(WEFT_LOG_ERROR, 0, __VA_ARGS__)
#define log_warn_errno(r, ...) weft_log(WEFT_LOG_WARN, (r), __VA_ARGS__)
#define log_error_errno(r, ...) weft_log(WEFT_LOG_ERROR, (r), __VA_ARGS__)

#endif
