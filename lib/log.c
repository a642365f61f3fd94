#include "lib/log.h"

#include <time.h>

static const char *log_prog = "weft";
static enum weft_log_level log_level = WEFT_LOG_INFO;

void weft_log_init(const char *progname, enum weft_log_level level)
{
	const char *env = getenv("WEFT_LOG");
	log_prog = progname;
	log_level = level;
	if (env && streq(env, "debug"))
		log_level = WEFT_LOG_DEBUG;
}

void weft_log_set_level(enum weft_log_level level)
{
	log_level = level;
}

bool weft_log_enabled(enum weft_log_level level)
{
	return level >= log_level;
}

int weft_log(enum weft_log_level level, int err, const char *fmt, ...)
{
	static const char *names[] = {"debug", "info", "warning", "error"};
	int saved = errno;
	va_list ap;

	if (err < 0)
		err = -err;
	if (!weft_log_enabled(level))
		return -err;
	/* Let %m print the error passed in, not whatever errno happens to be. */
	errno = err ? err : saved;
	va_start(ap, fmt);
	char *msg = wvasprintf(fmt, ap);
	va_end(ap);
	if (level == WEFT_LOG_INFO)
		fprintf(stderr, "%s: %s\n", log_prog, msg);
	else
		fprintf(stderr, "%s: %s: %s\n", log_prog, names[level], msg);
	free(msg);
	errno = saved;
	return -err;
}
