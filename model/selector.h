/* selector.h - label selector syntax checks.
 *
 * For now only basic sanity is checked (not empty, balanced parentheses
 * and quotes, no control characters); the ACL work replaces this with the
 * real selector parser behind the same function.
 */
#ifndef WEFT_SELECTOR_H
#define WEFT_SELECTOR_H

/* Longest selector accepted, in bytes. */
#define WEFT_SELECTOR_MAX 4096

/* Check the syntax of selector s ("all()", "role == 'web'", ...).
 * Returns 0, or -EINVAL with *err set to a malloc'ed phrase saying what is
 * wrong ("unbalanced parentheses"); err may be NULL. */
int weft_selector_validate(const char *s, char **err);

#endif
