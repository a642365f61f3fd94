/* metrics.h - weftd's counters and gauges, rendered in the Prometheus text
 * exposition format for GET /metrics (felix/weftd-status.c).
 *
 * A metric family is declared once (name, type, help); samples are keyed
 * by the family name and an optional label text such as `kind="route"`
 * (without braces; the caller quotes values it did not write itself with
 * weftd_metric_label_escape()). Single-threaded: the loop owns it.
 * Out of memory aborts.
 */
#ifndef WEFT_METRICS_H
#define WEFT_METRICS_H

#include "lib/util.h"

struct weftd_metrics;

struct weftd_metrics *weftd_metrics_new(void);
void weftd_metrics_free(struct weftd_metrics *m); /* accepts NULL */

/* type: "counter" or "gauge". Declaring again replaces the help text. */
void weftd_metric_declare(struct weftd_metrics *m, const char *name, const char *type, const char *help);
/* Add delta to / set the sample (name, labels); labels may be NULL. A
 * family not declared yet is declared as a gauge with no help. All accept
 * m == NULL (then do nothing), so code paths run without metrics too. */
void weftd_metric_add(struct weftd_metrics *m, const char *name, const char *labels, double delta);
void weftd_metric_set(struct weftd_metrics *m, const char *name, const char *labels, double value);
/* The sample's value, 0 when absent or m is NULL. */
double weftd_metric_get(const struct weftd_metrics *m, const char *name, const char *labels);
/* Drop every sample of a family (e.g. before re-setting per-peer gauges). */
void weftd_metric_reset(struct weftd_metrics *m, const char *name);
/* The exposition text: families in declaration order, each with # HELP and
 * # TYPE lines, samples in insertion order. malloc'ed. */
char *weftd_metrics_render(const struct weftd_metrics *m);
/* s with \ " and newlines escaped as a Prometheus label value. malloc'ed. */
char *weftd_metric_label_escape(const char *s);

#endif
