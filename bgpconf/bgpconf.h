/* bgpconf.h - the BGP fabric's control plane: render a BIRD 2 config for
 * one node from the store's resources, install it safely, and talk to
 * BIRD over its control socket.
 *
 * weft does not speak BGP itself: BIRD does. weft renders BIRD's config
 * (docs/bgp.md describes its shape), writes it atomically, has BIRD check
 * it (`bird -p -c FILE`), and asks the running BIRD to switch to it
 * (`configure` over the control socket), which changes only the protocols
 * whose config changed: sessions whose config is the same stay up.
 *
 * Three parts:
 *   - the snapshot and the renderer (pure: resources in, text out);
 *   - install: atomic write + validation with bird -p;
 *   - weft_birdc: a client of BIRD's control socket (`configure`,
 *     `show protocols`) and the mapping from protocol names back to peers.
 *
 * Return convention, for every function here: 0 (or a count where said) on
 * success, a negative errno on failure, output parameters untouched on
 * failure. Where a function takes char **err, a failure also leaves a
 * malloc'ed one-line description there (err may be NULL).
 *
 * Only IPv4 is rendered today: the node's router id and sessions use its
 * spec.bgp.ipv4Address, and IPv6 pools, blocks and peers are left out
 * (with a comment in the config naming what was skipped).
 */
#ifndef WEFT_BGPCONF_H
#define WEFT_BGPCONF_H

#include "lib/ipaddr.h"
#include "lib/util.h"
#include "model/resource.h"
#include "store/store.h"

/* The default AS of nodes when no BGPConfig says otherwise (Calico's). */
#define WEFT_BGP_DEFAULT_AS 64512

/* --- the snapshot ------------------------------------------------------------ */

/* An IPAM block and the node it is affine to (NULL: nobody). */
struct weft_bgp_block {
	struct weft_cidr cidr;
	char *affinity;
};

/* Everything the renderer reads: the resources of the kinds Node, BGPPeer,
 * BGPConfig and IPPool (others are ignored) and every IPAM block. Owned:
 * free with weft_bgp_snapshot_clear(). */
struct weft_bgp_snapshot {
	struct weft_resource *res;
	size_t nres;
	struct weft_bgp_block *blocks;
	size_t nblocks;
};

void weft_bgp_snapshot_clear(struct weft_bgp_snapshot *s);

/* Read a snapshot from the store: the four kinds' resources (decoded and
 * validated) and the IPAM blocks with their affinity (through
 * weft_ipam_usage()). A BGPPeer that does not decode is left out (one
 * session, not the node's config) and a Node whose only fault is
 * routeReflectorClusterID 0.0.0.0 is read with its router id there, each
 * named in a warning the first time it shows; any other corrupt record is
 * -EBADMSG naming its key in *err. */
int weft_bgp_snapshot_load(struct weft_store *store, struct weft_bgp_snapshot *out, char **err);

/* Add a block to a snapshot (tests, and callers that build snapshots by
 * hand). affinity is copied; NULL means affine to nobody. */
void weft_bgp_snapshot_add_block(struct weft_bgp_snapshot *s, const struct weft_cidr *cidr, const char *affinity);

/* --- the renderer -------------------------------------------------------------- */

/* Render the BIRD 2 config of node `node` from snapshot s, malloc'ed in
 * *out. The output depends only on the snapshot's content, never on the
 * order of its arrays, the time or the environment: an unchanged input
 * renders byte-identical text, so a caller can skip `configure` when the
 * text did not change.
 * Errors: -ENOENT when the node has no Node resource; -EINVAL when it has
 * no spec.bgp.ipv4Address (it cannot run BGP), with the reason in *err. */
int weft_bgpconf_render(const struct weft_bgp_snapshot *s, const char *node, char **out, char **err);

/* --- install -------------------------------------------------------------------- */

/* Write len bytes of text to path atomically: a temporary file in the same
 * directory (mode 0600: the config holds BGP passwords), fsync'ed, renamed
 * over path, and the directory fsync'ed (a failure of that last step is
 * logged: the new file is in place). A reader sees the old file or the
 * new one, never a mix. Returns 0 or a negative errno (path untouched). */
int weft_bgpconf_write_atomic(const char *path, const char *text, size_t len);

/* Check a config file with `BIRD -p -c path` (bird NULL = "bird" from
 * PATH). Returns 0 when BIRD accepts it; -EINVAL when it does not, with
 * BIRD's complaint in *err ("bird.conf:12:3 syntax error, ..."); -ENOENT
 * when the bird binary cannot be run; -ETIMEDOUT when it did not finish
 * within 10 s (it is killed; $WEFT_BGPCONF_CHECK_TIMEOUT_MS overrides the
 * limit, for tests). */
int weft_bgpconf_check(const char *bird, const char *path, char **err);

/* Render's companion: install text as path if it differs from what path
 * holds. The text is written to "<path>.new", checked with bird -p, and
 * only then renamed over path, so path only ever holds a config BIRD
 * accepted. Returns 1 when path was replaced, 0 when it already held
 * exactly this text (nothing done: no need to `configure`), or a negative
 * errno (path untouched, the .new file removed). */
int weft_bgpconf_install(const char *path, const char *text, const char *bird, char **err);

/* --- BIRD's control socket --------------------------------------------------- */

/* One line of a reply: its four-digit code and its text. Continuation lines
 * (a leading space on the wire) carry the code of the line they continue. */
struct weft_birdc_line {
	int code;
	char *text;
};

struct weft_birdc_reply {
	struct weft_birdc_line *lines;
	size_t n;
	int code; /* the code of the last line (0xxx success, 8xxx/9xxx errors) */
};
void weft_birdc_reply_clear(struct weft_birdc_reply *r);

struct weft_birdc;

/* Connect to BIRD's control socket at path and read its greeting ("0001
 * BIRD 2.0.12 ready."). timeout_ms (<= 0 = 5000) is a deadline for each
 * exchange as a whole, not for each read: for the connect with the
 * greeting, and for each command of the handle from its send to the last
 * line of its reply. A BIRD that is alive but does not accept (stopped,
 * busy: its listen backlog full), or anything that answers a byte at a
 * time, is -ETIMEDOUT within it, never a hang. -ENOENT / -ECONNREFUSED
 * when BIRD is not there, -EBADMSG when the other side does not talk like
 * BIRD. */
int weft_birdc_connect(const char *path, int timeout_ms, struct weft_birdc **out);
void weft_birdc_close(struct weft_birdc *c);

/* Send one command line (no newline) and read its whole reply, within the
 * handle's timeout. Returns 0 whatever BIRD's reply code (see
 * reply->code); -EIO / -ETIMEDOUT / -EBADMSG, or -EMSGSIZE for a reply
 * over 16 MiB, when the conversation fails (the handle is then unusable). */
int weft_birdc_cmd(struct weft_birdc *c, const char *cmd, struct weft_birdc_reply *reply);

/* The reply parser (exposed for tests and fuzzing): appends the complete
 * lines of data[0..len) to reply and sets *consumed to the bytes used.
 * Returns 1 when the reply's last line was seen (bytes after it are not
 * consumed), 0 when more bytes are needed, -EBADMSG on a line BIRD would
 * not send or one over 64 KiB (reply then holds the lines before it). */
int weft_birdc_feed(struct weft_birdc_reply *reply, const char *data, size_t len, size_t *consumed);

/* `configure` (file NULL: the file BIRD was started with; else `configure
 * "file"`). Returns 0 when BIRD reconfigured or started to (0003, 0004,
 * 0005 queued, 0018); -EINVAL when BIRD refused the config (8002, with
 * BIRD's message in *err); -ESHUTDOWN when BIRD is shutting down (0006);
 * -EIO for any other reply (the reply's text in *err). */
int weft_birdc_configure(struct weft_birdc *c, const char *file, char **err);

/* One row of `show protocols`. */
struct weft_bird_proto {
	char *name;
	char *proto; /* "BGP", "Kernel", "Static", ... */
	char *table; /* "master4", "---" */
	char *state; /* "up", "start", "down", "flush" */
	char *since; /* as BIRD prints it (the config asks for iso long) */
	char *info;  /* "Established", "Active Socket: Connection refused", "" */
};
void weft_bird_protos_free(struct weft_bird_proto *p, size_t n);

/* `show protocols`: every protocol, in BIRD's order. Returns the count. */
int weft_birdc_show_protocols(struct weft_birdc *c, struct weft_bird_proto **out, size_t *n);
/* The parser behind it, for a reply already read (tests). */
int weft_birdc_parse_protocols(const struct weft_birdc_reply *reply, struct weft_bird_proto **out, size_t *n);

/* --- protocol names <-> peers ---------------------------------------------- */

/* The kind of a BGP session the renderer writes, as a protocol name prefix:
 *   mesh      Mesh_A_B_C_D       node-to-node full mesh
 *   reflector Reflector_A_B_C_D  to a route reflector (from a client, or
 *                                between reflectors)
 *   client    Client_A_B_C_D     from a route reflector to its client
 *   global    Global_A_B_C_D     a BGPPeer without node/nodeSelector
 *   node      Node_A_B_C_D       a BGPPeer for this node only */
enum weft_bgp_peer_type {
	WEFT_BGP_PEER_MESH = 1,
	WEFT_BGP_PEER_REFLECTOR,
	WEFT_BGP_PEER_CLIENT,
	WEFT_BGP_PEER_GLOBAL,
	WEFT_BGP_PEER_NODE,
};

/* "mesh", "reflector", "client", "global", "node" ("?" otherwise). */
const char *weft_bgp_peer_type_name(enum weft_bgp_peer_type t);

/* The protocol name of a session, into buf (at least 32 bytes). Returns buf. */
const char *weft_bgp_proto_name(enum weft_bgp_peer_type t, const struct weft_ip *peer, char *buf, size_t size);

/* Map a protocol name back to its session type and peer address. Returns 0,
 * or -EINVAL when the name is not one of the renderer's session names
 * (weft_kernel, weft_blocks, ... and anything else). */
int weft_bgp_proto_parse(const char *name, enum weft_bgp_peer_type *type, struct weft_ip *peer);

#endif
