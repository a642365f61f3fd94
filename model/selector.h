/* selector.h - Calico-compatible label selectors: parse, match, print.
 *
 * A selector is a boolean expression over an endpoint's (or a node's)
 * labels: "role == 'db' && env in {'prod', 'staging'}", "has(app)",
 * "!(tier starts with 'fe')", "all()". The grammar, loosest binding first:
 *
 *   expr    = and { "||" and }
 *   and     = unary { "&&" unary }
 *   unary   = { "!" } primary
 *   primary = "all" "(" ")" | "has" "(" key ")" | "(" expr ")"
 *           | key ( "==" | "!=" ) string
 *           | key ( "in" | "not" "in" ) "{" [ string { "," string } [ "," ] ] "}"
 *           | key ( "contains" | "starts" "with" | "ends" "with" ) string
 *   key     = 1*( letter | digit | "_" | "." | "/" | "-" )
 *   string  = "'" { any byte but ' and control characters } "'"
 *           | '"' { any byte but " and control characters } '"'
 *
 * White space (space, tab, CR, LF) may appear between any two tokens. The
 * words all, has, in, not, contains, starts, ends and with are keywords only
 * where the grammar expects them, so they remain usable as label keys.
 * Matching follows Calico: "k != v" and "k not in {...}" also match when
 * the label k is absent; ==, in, contains, starts with and ends with need it.
 *
 * The empty (or all white space) selector parses as all(), as in Calico;
 * weft_selector_validate() nevertheless rejects it so a manifest says all()
 * or leaves the field out instead of writing "" by accident (for notSelector
 * "" would otherwise mean "match nothing").
 *
 * Calico's global() (non-namespaced resources) is rejected: weft has no
 * namespaces, and silently reading it as all() would change its meaning.
 *
 * A parsed selector is immutable and may be shared between threads.
 * Out of memory aborts (see lib/util.h).
 */
#ifndef WEFT_SELECTOR_H
#define WEFT_SELECTOR_H

#include <stdbool.h>
#include <stddef.h>

/* Longest selector accepted, in bytes: both the text as written and its
 * canonical form (which may add spaces and parentheses) must fit, so that
 * weft_selector_str() always gives text that parses back. */
#define WEFT_SELECTOR_MAX 4096
/* Deepest nesting of parentheses accepted; the parser, printer and matcher
 * recurse, so this bounds their stack use. */
#define WEFT_SELECTOR_MAX_DEPTH 64

struct weft_selector;

/* A label set to match against: n key/value pairs sorted by key in strcmp()
 * order, keys unique (weft_selector_labels_sort() sorts an array built in any
 * order). The strings are borrowed; match() never keeps them. A NULL value
 * reads as "" (the label is present with an empty value). */
struct weft_label {
	const char *key;
	const char *value;
};
struct weft_labels {
	const struct weft_label *v;
	size_t n;
};

/* Check the syntax of selector s ("all()", "role == 'web'", ...) for the
 * resource schema. Returns 0, or -EINVAL with *err set to a malloc'ed
 * one-line phrase to follow the quoted selector ("is not a valid selector:
 * at 6: expected ==, !=, in, not in, contains, starts with or ends with");
 * err may be NULL. Empty selectors are rejected here (see above). */
int weft_selector_validate(const char *s, char **err);

/* Parse text into *out. Returns 0, or -EINVAL with *out untouched and *err
 * (if err is not NULL) set to a malloc'ed one-line message naming the
 * 1-based byte position: `selector "role = 'db'": at 6: expected ==, !=,
 * in, not in, contains, starts with or ends with`. text may be NULL (read
 * as ""). */
int weft_selector_parse(const char *text, struct weft_selector **out, char **err);

/* Free a selector; NULL is fine. */
void weft_selector_free(struct weft_selector *s);

/* Does the label set match? labels may be NULL (no labels). */
bool weft_selector_match(const struct weft_selector *s, const struct weft_labels *labels);

/* The canonical text of s (malloc'ed, never NULL): single spaces around
 * binary operators, no redundant parentheses, && and || chains flattened,
 * double negation removed, set members sorted and deduplicated, values in
 * single quotes (double quotes when the value holds a '). Parsing it gives
 * back an equal selector, and equal selectors print the same text, so the
 * text can serve as a key for deduplication. */
char *weft_selector_str(const struct weft_selector *s);

/* Are a and b the same expression (after the normalisation described at
 * weft_selector_str())? */
bool weft_selector_equal(const struct weft_selector *a, const struct weft_selector *b);

/* The label keys s refers to, sorted and unique: for an index from label key
 * to the selectors that must be re-evaluated when that label changes.
 * Returns the count and sets *keys to an array owned by s (valid until
 * weft_selector_free()); all() gives 0. */
size_t weft_selector_keys(const struct weft_selector *s, const char *const **keys);

/* Does s certainly match every label set? True for all() and for forms that
 * reduce to it without looking at labels ("all() || x", "k not in {}",
 * "!(k in {})"); tautologies that depend on labels ("has(a) || !has(a)")
 * give false. The ACL compiler uses it to skip building a set. */
bool weft_selector_is_all(const struct weft_selector *s);

/* Sort an array of labels by key (strcmp order) so it can be used as a
 * struct weft_labels. Duplicate keys stay; match() then sees one of them. */
void weft_selector_labels_sort(struct weft_label *v, size_t n);

#endif
