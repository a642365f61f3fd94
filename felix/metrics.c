/* metrics.c - a small registry of Prometheus counters and gauges. weftd
 * has a few dozen samples, so plain arrays and linear lookups do. */
#include "felix/metrics.h"

#include <math.h>

struct sample {
	char *labels; /* NULL: none */
	double value;
};

struct family {
	char *name, *type, *help;
	struct sample *samples;
	size_t n, cap;
};

struct weftd_metrics {
	struct family *fams;
	size_t n, cap;
};

struct weftd_metrics *weftd_metrics_new(void)
{
	return wcalloc(1, sizeof(struct weftd_metrics));
}

void weftd_metrics_free(struct weftd_metrics *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n; i++) {
		struct family *f = &m->fams[i];

		for (size_t j = 0; j < f->n; j++)
			free(f->samples[j].labels);
		free(f->samples);
		free(f->name);
		free(f->type);
		free(f->help);
	}
	free(m->fams);
	free(m);
}

static struct family *family_find(const struct weftd_metrics *m, const char *name)
{
	for (size_t i = 0; i < m->n; i++)
		if (streq(m->fams[i].name, name))
			return &m->fams[i];
	return NULL;
}

void weftd_metric_declare(struct weftd_metrics *m, const char *name, const char *type, const char *help)
{
	struct family *f;

	if (!m)
		return;
	f = family_find(m, name);
	if (!f) {
		if (m->n == m->cap) {
			m->cap = m->cap ? 2 * m->cap : 16;
			m->fams = wrealloc(m->fams, m->cap * sizeof(*m->fams));
		}
		f = &m->fams[m->n++];
		memset(f, 0, sizeof(*f));
		f->name = wstrdup(name);
	}
	free(f->type);
	free(f->help);
	f->type = wstrdup(type);
	f->help = help ? wstrdup(help) : NULL;
}

static bool labels_eq(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return streq(a, b);
}

static struct sample *sample_get(struct weftd_metrics *m, const char *name, const char *labels)
{
	struct family *f = family_find(m, name);

	if (!f) {
		weftd_metric_declare(m, name, "gauge", NULL);
		f = family_find(m, name);
	}
	for (size_t i = 0; i < f->n; i++)
		if (labels_eq(f->samples[i].labels, labels))
			return &f->samples[i];
	if (f->n == f->cap) {
		f->cap = f->cap ? 2 * f->cap : 4;
		f->samples = wrealloc(f->samples, f->cap * sizeof(*f->samples));
	}
	f->samples[f->n] = (struct sample){labels ? wstrdup(labels) : NULL, 0};
	return &f->samples[f->n++];
}

void weftd_metric_add(struct weftd_metrics *m, const char *name, const char *labels, double delta)
{
	if (m)
		sample_get(m, name, labels)->value += delta;
}

void weftd_metric_set(struct weftd_metrics *m, const char *name, const char *labels, double value)
{
	if (m)
		sample_get(m, name, labels)->value = value;
}

double weftd_metric_get(const struct weftd_metrics *m, const char *name, const char *labels)
{
	const struct family *f = m ? family_find(m, name) : NULL;

	if (!f)
		return 0;
	for (size_t i = 0; i < f->n; i++)
		if (labels_eq(f->samples[i].labels, labels))
			return f->samples[i].value;
	return 0;
}

void weftd_metric_reset(struct weftd_metrics *m, const char *name)
{
	struct family *f = m ? family_find(m, name) : NULL;

	if (!f)
		return;
	for (size_t i = 0; i < f->n; i++)
		free(f->samples[i].labels);
	f->n = 0;
}

char *weftd_metrics_render(const struct weftd_metrics *m)
{
	struct weft_buf b = {0};

	for (size_t i = 0; m && i < m->n; i++) {
		const struct family *f = &m->fams[i];

		if (f->help)
			weft_buf_printf(&b, "# HELP %s %s\n", f->name, f->help);
		weft_buf_printf(&b, "# TYPE %s %s\n", f->name, f->type);
		for (size_t j = 0; j < f->n; j++) {
			double v = f->samples[j].value;

			if (f->samples[j].labels)
				weft_buf_printf(&b, "%s{%s} ", f->name, f->samples[j].labels);
			else
				weft_buf_printf(&b, "%s ", f->name);
			if (v == floor(v) && fabs(v) < 1e15)
				weft_buf_printf(&b, "%.0f\n", v);
			else
				weft_buf_printf(&b, "%.9g\n", v);
		}
	}
	return weft_buf_steal(&b);
}

char *weftd_metric_label_escape(const char *s)
{
	struct weft_buf b = {0};

	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			weft_buf_printf(&b, "\\%c", *s);
		else if (*s == '\n')
			weft_buf_printf(&b, "\\n");
		else
			weft_buf_printf(&b, "%c", *s);
	}
	return weft_buf_steal(&b);
}
