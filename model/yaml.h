/* yaml.h - YAML <-> cJSON with libyaml (internal to model/; the public
 * emitter is weft_yaml_emit() in model/resource.h).
 *
 * Reading follows the YAML 1.2 core schema: plain scalars become null
 * (null, Null, NULL, ~, empty), booleans (true/True/TRUE, false/...),
 * integers (decimal, 0o octal, 0x hex) or floats; quoted scalars stay
 * strings. .inf and .nan are refused (JSON cannot hold them). Aliases are
 * refused (no billion laughs; manifests do not need them); anchors alone
 * are ignored. Duplicate mapping keys are an error. Mapping keys must be
 * scalars and are kept as their text. Nesting deeper than
 * WEFT_YAML_MAX_DEPTH is refused.
 */
#ifndef WEFT_YAML_H
#define WEFT_YAML_H

#include "lib/util.h"

#include <cjson/cJSON.h>

#define WEFT_YAML_MAX_DEPTH 64

/* Parse a YAML stream into a cJSON array with one element per document (an
 * empty document is null). Returns 0, or -EINVAL with *err set to a
 * malloc'ed "line L:C: problem" message. */
int weft_yaml_parse(const char *text, size_t len, cJSON **out, char **err);

#endif
