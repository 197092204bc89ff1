/*
 * The `shardmart` binary: one executable, many subcommands. main() finds the subcommand in the
 * table below and hands it the rest of argv; every subcommand lives in its own cli/cmd_<name>.c.
 */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"

#define SHARDMART_VERSION "0.1.0"

static int cmd_help(int argc, char **argv);
static int cmd_version(int argc, char **argv);

static const char help_usage[] = "usage: shardmart help [command]\n"
                                 "Lists the commands, or explains one.\n";
static const char version_usage[] = "usage: shardmart version\n";

const struct cli_command cli_commands[] = {
    {"help", "list the commands, or explain one", help_usage, cmd_help},
    {"version", "print the version", version_usage, cmd_version},
    {"start", "start one node (RESP and HTTP)", cli_start_usage, cli_start},
    {"ring", "plan placement: balance and movement for a sample cluster", cli_ring_usage, cli_ring},
    {"wal", "check or print a log directory (verify, dump)", cli_wal_usage, cli_wal},
    {"bench", "drive load at a node and measure it", cli_bench_usage, cli_bench},
    {"check", "prove a history against the node's final state", cli_check_usage, cli_check},
    {"admin", "the cluster's status from etcd: nodes, partitions, primaries", cli_admin_usage,
     cli_admin},
    {"sim", "run the seeded cluster simulator and check every run", cli_sim_usage, cli_sim},
    {"demo", "etcd and three nodes: a flash sale through a primary's kill -9", cli_demo_usage,
     cli_demo},
    {NULL, NULL, NULL, NULL},
};

static const struct cli_command *find_command(const char *name)
{
    for (const struct cli_command *c = cli_commands; c->name; c++)
        if (strcmp(c->name, name) == 0)
            return c;
    return NULL;
}

static int cmd_help(int argc, char **argv)
{
    if (argc >= 1) {
        const struct cli_command *c = find_command(argv[0]);
        if (!c) {
            fprintf(stderr, "shardmart: no command '%s' (see 'shardmart help')\n", argv[0]);
            return 2;
        }
        fputs(c->usage, stdout);
        return 0;
    }
    printf("shardmart %s: a fault-tolerant trading engine\n\nusage: shardmart <command> [args]\n\n"
           "commands:\n",
           SHARDMART_VERSION);
    for (const struct cli_command *c = cli_commands; c->name; c++)
        printf("  %-10s %s\n", c->name, c->summary);
    printf("\n'shardmart help <command>' explains one.\n");
    return 0;
}

static int cmd_version(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("shardmart %s\n", SHARDMART_VERSION);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return cmd_help(0, NULL);
    const struct cli_command *c = find_command(argv[1]);
    if (!c) {
        fprintf(stderr, "shardmart: unknown command '%s' (see 'shardmart help')\n", argv[1]);
        return 2;
    }
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(c->usage, stdout);
            return 0;
        }
    }
    return c->run(argc - 2, argv + 2);
}
