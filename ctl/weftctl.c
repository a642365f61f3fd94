/* weftctl - the calicoctl-like command line for weft.
 *
 *   weftctl [--store URL] [--config FILE] COMMAND [ARGS]
 *
 * Writes are all-or-nothing: every document of a manifest is validated
 * first, then all are written in one store transaction whose compares make
 * create/replace/delete exact (no document is written unless all can be).
 *
 * Exit codes: 0 success, 1 failure (one line on stderr), 2 usage error.
 */
#include "ctl/ctl.h"
#include "lib/json.h"

#include <getopt.h>

static const char *const main_usage =
	"Usage: weftctl [--store URL] [--config FILE] COMMAND [ARGS]\n"
	"\n"
	"Manage weft resources in the datastore.\n"
	"\n"
	"Commands:\n"
	"  apply -f FILE|-       create or replace the resources of a manifest\n"
	"  create -f FILE|-      create resources; fails if any exists\n"
	"  replace -f FILE|-     replace resources; fails if any is missing\n"
	"  delete -f FILE|-      delete the resources of a manifest\n"
	"  delete KIND NAME...   delete resources by name\n"
	"  get KIND [NAME...] [-o table|json|yaml]\n"
	"                        show resources\n"
	"  store check           check the datastore's integrity\n"
	"  ipam show|check|release\n"
	"                        IP address utilisation, leaks, release\n"
	"  node status [--node NAME] [--bird-socket PATH]\n"
	"                        the node's BGP peers, from BIRD\n"
	"  profile list          list profiles (classic Calico v1 commands)\n"
	"  profile NAME create|delete|show\n"
	"  profile NAME rule add|remove|show ...\n"
	"  profile NAME tag add|remove TAG\n"
	"                        edit a profile's rules and tags\n"
	"  policy trace [--sport N] SRC DST [PROTO[/PORT]]\n"
	"                        what the ACLs do to a packet, and why\n"
	"  version               print the version\n"
	"\n"
	"Kinds: ippool, profile, policy, node, bgppeer, bgpconfig, tenant,\n"
	"network, endpoint (singular, plural or short names, any case).\n"
	"\n"
	"Options:\n"
	"  -s, --store URL       datastore: file:DIR or etcd://HOST:PORT[,...][?opts]\n"
	"  -c, --config FILE     config file (default $WEFT_CONFIG or " WEFT_DEFAULT_CONFIG ")\n"
	"  -h, --help            this help; COMMAND --help for a command's help\n"
	"\n"
	"The store is taken from --store, else $WEFT_STORE, else the config file's\n"
	"\"store:\" key, else file:" WEFT_DEFAULT_STORE_DIR ".\n";

static int usage_error(const char *msg, const char *arg)
{
	fprintf(stderr, "weftctl: %s%s%s%s (see weftctl --help)\n", msg, arg ? " \"" : "", arg ? arg : "",
		arg ? "\"" : "");
	return 2;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"store", required_argument, NULL, 's'},
		{"config", required_argument, NULL, 'c'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	struct ctl ctl = {0};
	int c;

	weft_log_init("weftctl", WEFT_LOG_WARN);
	weft_json_init();
	while ((c = getopt_long(argc, argv, "+s:c:h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			ctl.store_url = optarg;
			break;
		case 'c':
			ctl.config_path = optarg;
			break;
		case 'h':
			fputs(main_usage, stdout);
			return 0;
		default:
			return 2;
		}
	}
	if (optind >= argc)
		return usage_error("no command given", NULL);

	const char *cmd = argv[optind];
	int sub_argc = argc - optind;
	char **sub_argv = argv + optind;
	/* Subcommands parse their own options; optind = 0 makes glibc's getopt
	 * start over (and permute again, so options may follow KIND NAME). */
	optind = 0;

	if (streq(cmd, "apply") || streq(cmd, "create") || streq(cmd, "replace"))
		return ctl_cmd_write(&ctl, cmd, sub_argc, sub_argv);
	if (streq(cmd, "delete"))
		return ctl_cmd_delete(&ctl, sub_argc, sub_argv);
	if (streq(cmd, "get"))
		return ctl_cmd_get(&ctl, sub_argc, sub_argv);
	if (streq(cmd, "store"))
		return ctl_cmd_store(&ctl, sub_argc, sub_argv);
	if (streq(cmd, "ipam"))
		return ctl_cmd_ipam(&ctl, sub_argc, sub_argv);
	if (streq(cmd, "node"))
		return ctl_cmd_node(&ctl, sub_argc, sub_argv);
	if (streq(cmd, "profile"))
		return ctl_cmd_profile(&ctl, sub_argc, sub_argv);
	if (streq(cmd, "policy"))
		return ctl_cmd_policy(&ctl, sub_argc, sub_argv);
	if (streq(cmd, "version")) {
		if (sub_argc > 1 && (streq(sub_argv[1], "--help") || streq(sub_argv[1], "-h"))) {
			fputs("Usage: weftctl version\n\nPrint weftctl's version.\n", stdout);
			return 0;
		}
		if (sub_argc > 1)
			return usage_error("version: unexpected argument", sub_argv[1]);
		printf("weftctl %s\n", WEFT_VERSION);
		return 0;
	}
	if (streq(cmd, "help")) {
		if (sub_argc > 1 && !streq(sub_argv[1], "--help") && !streq(sub_argv[1], "-h"))
			return usage_error("help: use weftctl COMMAND --help for a command's help; unexpected argument",
					   sub_argv[1]);
		fputs(main_usage, stdout);
		return 0;
	}
	return usage_error("unknown command", cmd);
}
