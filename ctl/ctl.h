/* ctl.h - weftctl's commands, shared state and helpers. */
#ifndef WEFT_CTL_H
#define WEFT_CTL_H

#include "lib/log.h"
#include "model/resource.h"
#include "store/store.h"

#define WEFT_DEFAULT_CONFIG "/etc/weft/weftctl.yaml"
#define WEFT_DEFAULT_STORE_DIR "/var/lib/weft/store"

struct ctl {
	const char *store_url;   /* from --store, or NULL */
	const char *config_path; /* from --config, or NULL */
	struct weft_store *store;
};

/* Resolve the store URL (--store, $WEFT_STORE, config file, default) and
 * open it. Returns 0, or 1 after printing a one-line error. */
int ctl_open_store(struct ctl *ctl);
void ctl_close_store(struct ctl *ctl);

/* Print "weftctl: <msg>" on stderr; return 1 (the failure exit code). */
int ctl_fail(const char *fmt, ...) PRINTF_LIKE(1, 2);
/* Print "weftctl: <cmd>: <msg> (see weftctl <cmd> --help)" on stderr;
 * return 2 (the usage-error exit code). */
int ctl_usage(const char *cmd, const char *fmt, ...) PRINTF_LIKE(2, 3);

/* Report a failed store write and return 1: "store write failed, nothing
 * <nothing>: <why>" ("written", "deleted") when nothing was written, or,
 * when the store cannot tell (weft_store_outcome_unknown()), that the
 * outcome is unknown and how to learn it. */
int ctl_write_failed(struct ctl *ctl, int r, const char *nothing);

/* Compare-and-swap conflicts: another writer changed what we read. A
 * conflict means someone made progress, so try again from a fresh read,
 * after a randomised pause that grows (1 ms doubling to 100 ms), until
 * CTL_RETRY_MS after the first conflict. Start with {0}; returns true
 * (after the pause) while another attempt may be made. */
#define CTL_RETRY_MS 5000
struct ctl_retry {
	int64_t deadline_ms;
	unsigned attempt;
};
bool ctl_retry_again(struct ctl_retry *rt);

/* Read a whole file ("-" = stdin). Returns 0 or a negative errno. */
int ctl_read_file(const char *path, char **out, size_t *len);

/* Deleting a Node (ctl/node-delete.c), in two steps so that every Node a
 * command names is checked before anything goes. The check: the Node
 * exists and its weftd does not seem to run (unless force); 0 and
 * *node_rev (the revision to delete the Node at), or 1 after a message.
 * The cascade: what belongs to the Node (its Endpoints, its BGPPeers, its
 * IPAM addresses and blocks); the keys of the records it deleted are
 * appended to (*deleted)[*ndeleted] (malloc'ed, even on failure); 0 and
 * *summary (malloc'ed, "2 Endpoints, ..."), or 1 after a message. The Node
 * record is left to the caller. */
int ctl_node_delete_check(struct ctl *ctl, const char *node, bool force, int64_t *node_rev);
int ctl_node_delete_cascade(struct ctl *ctl, const char *node, char ***deleted, size_t *ndeleted, char **summary);

/* Command entry points: argv[0] is the command name. They return the exit
 * code. */
int ctl_cmd_write(struct ctl *ctl, const char *mode, int argc, char **argv);
int ctl_cmd_delete(struct ctl *ctl, int argc, char **argv);
int ctl_cmd_get(struct ctl *ctl, int argc, char **argv);
int ctl_cmd_store(struct ctl *ctl, int argc, char **argv);
int ctl_cmd_ipam(struct ctl *ctl, int argc, char **argv);
int ctl_cmd_node(struct ctl *ctl, int argc, char **argv);
int ctl_cmd_profile(struct ctl *ctl, int argc, char **argv);
int ctl_cmd_policy(struct ctl *ctl, int argc, char **argv);

#endif
